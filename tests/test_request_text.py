"""Text hygiene on every string field of every request of the three services.

The fields come from the proto descriptors and each must have a rule below, so
a new field cannot be forgotten. Free text refuses control characters (C0, C1,
NUL) and bidirectional controls with a violation naming the field; line breaks
pass only where a note may have several lines. A field checked another way is
listed with the reason. Each rule is tried against real servers.
"""

from __future__ import annotations

from typing import Final

import pytest
from loansuite.auth.v1 import auth_service_pb2 as auth_pb

from tests.loans.factories import loan_request
from tests.request_fields import METHODS, set_field, string_fields, without_indexes
from tests.request_probes import Answer, World, call, probe
from tests.support import PASSWORD, Suite

SINGLE: Final = "single line"  # refused with a violation naming the field
MULTILINE: Final = "multiline"  # as SINGLE, but tab and newline pass

_UUID = "an id parsed as a UUID: anything else is NOT_FOUND, and nothing is stored"
_DECIMAL = "a decimal of ASCII digits: anything else is refused on the field"
_DATE = "a YYYY-MM-DD date: anything else is refused on the field"
_AUDIT = "a producer's value, checked for hidden characters and stored exactly as sent"

# Rules by field path, whatever the request; an RPC that reads a path differently
# has its own entry in OVERRIDES.
RULES: Final[dict[str, str]] = {
    "name": SINGLE,
    "organization_name": SINGLE,
    "email": SINGLE,
    "lender_email": SINGLE,
    "unit": SINGLE,
    "currency_code": SINGLE,
    "reason": MULTILINE,
    "note": MULTILINE,
    "request_id": SINGLE,
    "update_mask.paths": SINGLE,
    "action": SINGLE,
    "organization_id": SINGLE,
    "filter.resource_type": SINGLE,
    "filter.resource_id": SINGLE,
    "filter.actor_user_id": SINGLE,
    "filter.action": SINGLE,
    "filter.organization_id": SINGLE,
    "filter.counterparty_organization_id": SINGLE,
    "expected_head.hash": SINGLE,
    **dict.fromkeys(
        (
            "principal_amount",
            "committed_amount",
            "drawn_amount",
            "baseline_value",
            "target_value",
            "threshold_value",
            "value",
            "amount",
        ),
        SINGLE,
    ),
    **dict.fromkeys(
        (
            "start_date",
            "maturity_date",
            "effective_from",
            "effective_to",
            "period_start",
            "period_end",
        ),
        SINGLE,
    ),
    **dict.fromkeys(
        (
            "loan_id",
            "kpi_id",
            "ratchet_id",
            "kpi_result_id",
            "restates_result_id",
            "drawdown_id",
            "user_id",
        ),
        _UUID,
    ),
    "etag": "compared with the current version's etag: anything else is ETAG_MISMATCH",
    "page_token": "verified by its HMAC: anything else is PAGE_TOKEN_INVALID",
    "password": "a secret: every character counts and it is never shown (auth's own rules)",
    "refresh_token": "an opaque secret looked up by its hash: anything else is refused",
    "service_secret": "compared in constant time with the deployment's secret; never stored",
    "service_name": "one of the suite's service names: anything else is refused",
    **{
        f"events.{path}": SINGLE
        for path in (
            "event_id",
            "action",
            "resource_type",
            "source",
            "actor.role",
            "changes.field",
        )
    },
    **{
        f"events.{path}": _AUDIT
        for path in (
            "resource_id",
            "actor.user_id",
            "actor.organization_id",
            "organization_ids",
            "request_id",
            "changes.old_value",
            "changes.new_value",
        )
    },
    "events.hash": "assigned on ingest: what a producer sends there is ignored",
    # W3C ids: lowercase hex of their length or empty; anything else is refused on the field.
    "events.trace_id": SINGLE,
    "events.span_id": SINGLE,
}
OVERRIDES: Final[dict[tuple[str, str], str]] = {}
# (rpc, path) → rule for every string field the descriptors hold.
FIELDS: Final = {
    (rpc, path): OVERRIDES.get((rpc, path), RULES.get(path, ""))
    for rpc, method in sorted(METHODS.items())
    for path in string_fields(method.input_type)
}
HIDDEN: Final = {
    "escape": "Solar\u001b[2J Park",
    "nul": "Green\u0000Bank",
    "c1": "c1\u0085next",
    "bidi": "Invoice \u202efdp.exe",
}
LINE_BREAK: Final = "first line\nsecond line"


@pytest.fixture(scope="module")
def world(suite: Suite) -> World:
    return World.of(suite)


def test_every_string_field_has_a_rule() -> None:
    missing = sorted(f"{rpc}.{path}" for (rpc, path), rule in FIELDS.items() if not rule)

    assert not missing, "give these fields a rule in RULES (or OVERRIDES)"
    assert ("Register", "organization_name") in FIELDS
    assert ("IngestEvents", "events.changes.field") in FIELDS


def _send(world: World, rpc: str, path: str, value: str) -> Answer:
    build, caller = probe(rpc)
    request = build(world)
    set_field(request, path, value)
    mask = getattr(request, "update_mask", None)
    maskable = FIELDS[rpc, path] in (SINGLE, MULTILINE) and path != "request_id"
    if mask is not None and maskable and "." not in path and path not in mask.paths:
        mask.paths.append(path)  # an update reads only the fields its mask names
    answer = call(world, rpc, request, caller(world))
    if answer.code == "OK":
        world.forget_loans()  # the call may have moved them on
    return answer


def _refused_on(answer: Answer, path: str) -> bool:
    if answer.code != "INVALID_ARGUMENT" or answer.error is None:
        return False
    named = {without_indexes(v.field) for v in answer.error.field_violations}
    return any(path == f or path.startswith(f"{f}.") for f in named)


CHECKED = [(rpc, path) for (rpc, path), rule in FIELDS.items() if rule in (SINGLE, MULTILINE)]
OTHERS = [(rpc, path) for (rpc, path), rule in FIELDS.items() if rule not in (SINGLE, MULTILINE)]


@pytest.mark.parametrize("hidden", sorted(HIDDEN))
@pytest.mark.parametrize(("rpc", "path"), CHECKED)
def test_free_text_refuses_hidden_characters(
    world: World, rpc: str, path: str, hidden: str
) -> None:
    answer = _send(world, rpc, path, HIDDEN[hidden])

    assert _refused_on(answer, path), answer


@pytest.mark.parametrize(("rpc", "path"), CHECKED)
def test_line_breaks_only_where_a_note_may_have_several_lines(
    world: World, rpc: str, path: str
) -> None:
    answer = _send(world, rpc, path, LINE_BREAK)

    assert _refused_on(answer, path) == (FIELDS[rpc, path] == SINGLE), answer


@pytest.mark.parametrize("hidden", sorted(HIDDEN))
@pytest.mark.parametrize(("rpc", "path"), OTHERS)
def test_fields_checked_otherwise_never_fail_on_hidden_characters(
    world: World, rpc: str, path: str, hidden: str
) -> None:
    answer = _send(world, rpc, path, HIDDEN[hidden])

    assert answer.code not in ("INTERNAL", "STATUS_INTERNAL", "STATUS_UNKNOWN"), answer


def test_text_is_stored_in_nfc(world: World) -> None:
    decomposed = "Cafe\u0301 Solaire"  # "e" and a combining acute accent
    composed = "Caf\u00e9 Solaire"
    registered = world.suite.auth.Register(
        auth_pb.RegisterRequest(
            email=f"nfc-{id(world)}-{len(FIELDS)}@example.com",
            password=PASSWORD,
            name=decomposed,
            role=auth_pb.USER_ROLE_BORROWER,
            organization_name=f"{decomposed} {id(decomposed)}",
        )
    )
    created = world.suite.loans.CreateLoan(
        loan_request(name=decomposed), metadata=world.borrower.metadata
    )

    assert registered.HasField("user"), registered.error
    assert registered.user.name == composed
    assert registered.user.organization.name.startswith(composed)
    assert created.HasField("loan"), created.error
    assert created.loan.name == composed
