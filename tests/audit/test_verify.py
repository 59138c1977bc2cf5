"""VerifyChain on a live server: who may call it, a gapless log, a chain anyone can recompute."""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.common.v1 import error_pb2

from services.audit import use_cases
from services.audit.conversions import records_from_proto
from services.audit.schemas import parse_events
from services.shared._types import Metadata
from services.shared.db import Database
from tests.audit.support import Stack, make_event


def verify(stack: Stack, metadata: Metadata) -> audit_pb.VerifyChainResponse:
    return stack.audit.VerifyChain(audit_pb.VerifyChainRequest(), metadata=metadata, timeout=30)


@pytest.mark.parametrize("who", ["borrower", "admin", "service"])
def test_any_authenticated_caller_may_verify(stack: Stack, who: str) -> None:
    if who == "service":
        metadata = stack.service_metadata()
    elif who == "admin":
        metadata = stack.admin().metadata
    else:
        metadata = stack.user(auth_pb.USER_ROLE_BORROWER).metadata
    empty = verify(stack, metadata).verification
    stack.ingest([make_event("org-a") for _ in range(3)])

    verification = verify(stack, metadata).verification

    assert (empty.intact, empty.checked_events, empty.HasField("head")) == (True, 0, False)
    assert not empty.HasField("expected_head")  # nothing published yet
    assert (verification.intact, verification.checked_events) == (True, 3)
    assert verification.head == verification.expected_head
    assert verification.head.sequence == 3


def test_verifying_needs_a_caller(stack: Stack) -> None:
    response = verify(stack, (("x-request-id", "req-verify"),))

    assert (response.error.code, response.error.reason, response.error.request_id) == (
        error_pb2.ERROR_CODE_UNAUTHENTICATED,
        "TOKEN_MISSING",
        "req-verify",
    )


def _outside_hash(previous: bytes, event: audit_pb.AuditEvent) -> bytes:
    """The chain as chain.py's docstring specifies it, from the wire alone."""

    def instant(value: Timestamp) -> str:
        return value.ToDatetime().isoformat(timespec="microseconds") + "Z"

    encoding = {
        "sequence": event.sequence,
        "event_id": event.event_id,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "actor_user_id": event.actor.user_id,
        "actor_organization_id": event.actor.organization_id,
        "actor_role": event.actor.role,
        "organization_ids": sorted(event.organization_ids),
        "request_id": event.request_id,
        "source": event.source,
        "occur_time": instant(event.occur_time),
        "ingest_time": instant(event.ingest_time),
        "changes": [[c.field, c.old_value, c.new_value] for c in event.changes],
    }
    canonical = json.dumps(encoding, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(previous + canonical).digest()


def test_an_outside_verifier_recomputes_the_chain_from_listed_events(stack: Stack) -> None:
    admin = stack.admin()
    unusual = make_event("org-z", "org-a", "org-m", resource_id='Zürich ☀ 🌍 "quoted" \\')
    unusual.changes.add(field="note", old_value='"a\\\\b"', new_value='"\\u00e9"')
    anonymous = make_event(action="LOGIN_FAILED", resource_type="user", actor_user_id="")
    anonymous.ClearField("changes")
    stack.ingest([make_event("org-a"), unusual], [anonymous])

    listed = stack.all_events(admin)

    previous = bytes(32)
    for event in listed:
        previous = _outside_hash(previous, event)
        assert previous.hex() == event.hash, event.sequence
    assert len(listed) == 3


class _RolledBack(Exception):
    pass


def _together(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def test_concurrent_ingest_numbers_the_log_without_gaps_and_keeps_it_chained(
    stack: Stack, audit_url: str
) -> None:
    admin = stack.admin()
    metadata = stack.service_metadata()
    streams = [[[make_event("org-a") for _ in range(25)] for _ in range(4)] for _ in range(5)]
    start = threading.Barrier(len(streams) + 1)
    other_replica = Database(audit_url)

    def send(batches: list[list[audit_pb.AuditEvent]]) -> None:
        start.wait()
        for response in stack.ingest(*batches, metadata=metadata):
            assert response.HasField("ack"), response.error

    def roll_back() -> None:
        """Batches that take their turn, then roll back: they must leave no hole."""
        start.wait()
        for _ in range(5):
            with contextlib.suppress(_RolledBack), other_replica.write() as session:
                events = parse_events(records_from_proto([make_event("org-a")]))
                use_cases.ingest_events(session, events, now=datetime.now(UTC))
                raise _RolledBack

    try:
        _together([lambda b=batches: send(b) for batches in streams] + [roll_back])
    finally:
        other_replica.dispose()

    listed = stack.all_events(admin)
    verification = verify(stack, admin.metadata).verification
    sent = {e.event_id for batches in streams for batch in batches for e in batch}
    assert {e.event_id for e in listed} == sent
    assert [e.sequence for e in listed] == list(range(1, len(sent) + 1))
    assert (verification.intact, verification.checked_events) == (True, len(sent))
    # The published head is the last event, whichever stream committed it.
    assert (verification.expected_head.sequence, verification.expected_head.hash) == (
        len(sent),
        listed[-1].hash,
    )
