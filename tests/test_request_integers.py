"""Numbers in range: every integer field of every request, at the edges of its type.

The fields come from the proto descriptors, so a new one is probed the day it
is added. Each extreme value goes, alone, into an otherwise valid request to a
real server: the answer may be a payload or a refusal, never an internal
error, and a refusal names the field it refuses.
"""

from __future__ import annotations

import pytest

from tests.request_fields import EXTREMES, METHODS, integer_fields, set_field, without_indexes
from tests.request_probes import World, call, probe
from tests.support import Suite

CASES = [
    (rpc, path, value)
    for rpc, method in sorted(METHODS.items())
    for path, field in integer_fields(method.input_type)
    for value in EXTREMES[field.type]
]


@pytest.fixture(scope="module")
def world(suite: Suite) -> World:
    return World.of(suite)


def test_the_walk_finds_the_known_integer_fields() -> None:
    found = {(rpc, path) for rpc, path, _ in CASES}

    assert ("TailAuditEvents", "after_sequence") in found
    assert ("CreateMarginRatchet", "cap_bps") in found
    assert ("ListAuditEvents", "filter.occur_time_from.seconds") in found
    assert ("IngestEvents", "events.sequence") in found


@pytest.mark.parametrize(("rpc", "path", "value"), CASES)
def test_no_integer_is_an_internal_error(world: World, rpc: str, path: str, value: int) -> None:
    build, caller = probe(rpc)
    request = build(world)
    set_field(request, path, value)

    answer = call(world, rpc, request, caller(world))
    if answer.code == "OK":
        world.forget_loans()  # the call may have moved them on

    assert answer.code not in ("INTERNAL", "STATUS_INTERNAL", "STATUS_UNKNOWN"), answer
    if answer.code == "INVALID_ARGUMENT":
        assert answer.error is not None
        named = {without_indexes(v.field) for v in answer.error.field_violations}
        assert any(path == f or path.startswith(f"{f}.") for f in named), answer.error
