"""Validation of incoming events and of the list filter: field paths and stable reasons."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.audit.schemas import MAX_BATCH_SIZE, EventFilter, parse_events, parse_filter
from services.shared.errors import Code, ValidationError
from services.shared.outbox import AuditRecord, Change

VALID = AuditRecord(
    event_id="3f2b8c1e-0d4a-4e5f-9a7b-1c2d3e4f5a6b",
    action="LOAN_CREATED",
    resource_type="loan",
    resource_id="loan-1",
    actor_user_id="user-1",
    actor_organization_id="org-1",
    actor_role="BORROWER",
    organization_ids=["org-2", "org-1", "org-2"],
    request_id="req-1",
    occur_time="2026-03-01T14:00:00+02:00",
    source="loans",
    changes=[Change("name", "null", '"Green"')],
)


def reasons_for(*records: AuditRecord) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        parse_events(list(records))
    assert caught.value.code is Code.INVALID_ARGUMENT
    return caught.value.reasons


def invalid(**changes: Any) -> AuditRecord:
    return dataclasses.replace(VALID, **changes)


def test_a_valid_event_parses_to_typed_values() -> None:
    [event] = parse_events([VALID])

    assert event.occur_time == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert event.occur_time.tzinfo is UTC
    assert event.organization_ids == ("org-1", "org-2")  # distinct, sorted
    assert [(c.field, c.old_value, c.new_value) for c in event.changes] == VALID.changes


def test_anonymous_events_without_organizations_are_valid() -> None:
    [event] = parse_events(
        [invalid(actor_user_id="", actor_organization_id="", actor_role="", organization_ids=[])]
    )

    assert event.actor_user_id == ""
    assert event.organization_ids == ()


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"event_id": ""}, "event_id", "EVENT_ID_REQUIRED"),
        ({"event_id": "not-a-uuid"}, "event_id", "EVENT_ID_INVALID"),
        ({"event_id": VALID.event_id.upper()}, "event_id", "EVENT_ID_INVALID"),
        ({"event_id": VALID.event_id.replace("-", "")}, "event_id", "EVENT_ID_INVALID"),
        ({"action": ""}, "action", "ACTION_REQUIRED"),
        ({"action": "loan_created"}, "action", "ACTION_INVALID"),
        ({"action": "LOAN CREATED"}, "action", "ACTION_INVALID"),
        ({"action": "_LOAN"}, "action", "ACTION_INVALID"),
        ({"action": "A" * 201}, "action", "VALUE_TOO_LONG"),
        ({"resource_type": ""}, "resource_type", "RESOURCE_TYPE_REQUIRED"),
        ({"resource_id": "r" * 201}, "resource_id", "VALUE_TOO_LONG"),
        ({"actor_user_id": "u" * 201}, "actor.user_id", "VALUE_TOO_LONG"),
        ({"actor_organization_id": "o" * 201}, "actor.organization_id", "VALUE_TOO_LONG"),
        ({"actor_role": "R" * 201}, "actor.role", "VALUE_TOO_LONG"),
        ({"organization_ids": ["org-1", ""]}, "organization_ids[1]", "ORGANIZATION_ID_REQUIRED"),
        ({"request_id": "q" * 201}, "request_id", "VALUE_TOO_LONG"),
        ({"source": ""}, "source", "SOURCE_REQUIRED"),
        ({"occur_time": ""}, "occur_time", "OCCUR_TIME_REQUIRED"),
        ({"occur_time": "2026-03-01T12:00:00"}, "occur_time", "OCCUR_TIME_INVALID"),
        ({"occur_time": "@1000000000000.0"}, "occur_time", "OCCUR_TIME_INVALID"),
        (
            {"changes": [("name", "1", "2"), ("", "1", "2")]},
            "changes[1].field",
            "CHANGE_FIELD_REQUIRED",
        ),
        ({"trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736"}, "trace_id", "TRACE_ID_INVALID"),
        ({"trace_id": "0" * 32}, "trace_id", "TRACE_ID_INVALID"),
        ({"trace_id": "4bf92f3577b34da6"}, "trace_id", "TRACE_ID_INVALID"),
        ({"span_id": "00f067aa0ba902b7\n"}, "span_id", "SPAN_ID_INVALID"),
        ({"span_id": "xyz"}, "span_id", "SPAN_ID_INVALID"),
        # The vocabulary producers write from their code never holds hidden characters.
        ({"source": "loans\u001b[2J"}, "source", "VALUE_HAS_CONTROL_CHARACTERS"),
        ({"resource_type": "loan\u202e"}, "resource_type", "VALUE_HAS_BIDI_CONTROLS"),
        ({"actor_role": "BORROWER\n"}, "actor.role", "VALUE_HAS_CONTROL_CHARACTERS"),
        (
            {"changes": [("name", "1", "2"), ("na\u0000me", "1", "2")]},
            "changes[1].field",
            "VALUE_HAS_CONTROL_CHARACTERS",
        ),
    ],
)
def test_each_rule_names_its_proto_field_path(
    changes: dict[str, object], field: str, reason: str
) -> None:
    assert reasons_for(invalid(**changes)) == {f"events[0].{field}": reason}


def test_opaque_fields_are_kept_exactly_as_sent() -> None:
    # Ids, request ids and changed values are stored and compared as sent: never
    # stripped or normalised, so ListAuditEvents finds them by what the producer wrote.
    sent = invalid(
        resource_id=' Zürich "quoted" ',
        actor_user_id="Cafe\u0301",
        request_id="req:1",
        organization_ids=["org-1 "],
        changes=[("note", '"a\\u001b[2J"', '"Invoice \\u202efdp.exe\\n"')],
    )

    [event] = parse_events([sent])

    assert (event.resource_id, event.actor_user_id, event.request_id) == (
        ' Zürich "quoted" ',
        "Cafe\u0301",
        "req:1",
    )
    assert event.organization_ids == ("org-1 ",)
    assert [(c.field, c.old_value, c.new_value) for c in event.changes] == sent.changes


@pytest.mark.parametrize(
    ("field", "value", "path", "reason"),
    [
        ("resource_id", "loan\n1", "resource_id", "VALUE_HAS_CONTROL_CHARACTERS"),
        ("actor_user_id", "user\u202e-1", "actor.user_id", "VALUE_HAS_BIDI_CONTROLS"),
        (
            "actor_organization_id",
            "org\u0085",
            "actor.organization_id",
            "VALUE_HAS_CONTROL_CHARACTERS",
        ),
        ("request_id", "req\t1", "request_id", "VALUE_HAS_CONTROL_CHARACTERS"),
    ],
)
def test_opaque_fields_refuse_hidden_characters(
    field: str, value: str, path: str, reason: str
) -> None:
    # No producer writes them (ids are UUIDs, request ids ASCII, values JSON with
    # non-ASCII escaped), so refusing them stalls no relay; PostgreSQL refuses a NUL anyway.
    assert reasons_for(invalid(**{field: value})) == {f"events[0].{path}": reason}


def test_organization_ids_and_changed_values_refuse_hidden_characters() -> None:
    reasons = reasons_for(
        invalid(organization_ids=["org\u0000-1"]),
        invalid(changes=[("note", '"a"', '"Invoice \u202efdp.exe"')]),
    )

    assert reasons == {
        "events[0].organization_ids[0]": "VALUE_HAS_CONTROL_CHARACTERS",
        "events[1].changes[0].new_value": "VALUE_HAS_BIDI_CONTROLS",
    }


def test_every_invalid_event_of_a_batch_is_reported() -> None:
    reasons = reasons_for(VALID, invalid(action="x", source=""), VALID, invalid(event_id="1"))

    assert reasons == {
        "events[1].action": "ACTION_INVALID",
        "events[1].source": "SOURCE_REQUIRED",
        "events[3].event_id": "EVENT_ID_INVALID",
    }


def test_a_batch_has_a_size_limit() -> None:
    assert len(parse_events([VALID] * MAX_BATCH_SIZE)) == MAX_BATCH_SIZE
    assert reasons_for(*[VALID] * (MAX_BATCH_SIZE + 1)) == {"events": "BATCH_TOO_LARGE"}


def test_filter_times_are_aware_utc_and_fingerprints_tell_filters_apart() -> None:
    plus_two = timezone(timedelta(hours=2))
    query = parse_filter(occur_time_from="2026-03-01T14:00:00+02:00", resource_id="loan-1")

    assert query.occur_time_from == datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert query.occur_time_to is None
    same = EventFilter(
        occur_time_from=datetime(2026, 3, 1, 14, tzinfo=plus_two), resource_id="loan-1"
    )
    assert query.fingerprint() == same.fingerprint()
    assert query.fingerprint() != parse_filter(resource_id="loan-1").fingerprint()
    assert parse_filter().fingerprint() != parse_filter(organization_id="org-1").fingerprint()


def test_an_invalid_filter_time_names_its_field() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_filter(occur_time_to="@1000000000000.0")

    assert caught.value.reasons == {"filter.occur_time_to": "OCCUR_TIME_INVALID"}
