"""IngestEvents under concurrency: racing streams and replicas store each event once, in turn."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import pytest
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from sqlalchemy import text

from services.audit import use_cases
from services.audit.conversions import records_from_proto
from services.audit.schemas import parse_events
from services.shared.db import Database
from tests.audit.support import Stack, acked_ids, make_event


def test_concurrent_streams_store_each_event_once(stack: Stack) -> None:
    reader = stack.user()
    batches = [[make_event(reader.organization_id) for _ in range(40)] for _ in range(3)]
    expected = [[e.event_id for e in batch] for batch in batches]
    metadata = stack.service_metadata()
    start = threading.Barrier(4)
    results: list[list[list[str]]] = []

    def send() -> None:
        start.wait()
        results.append(acked_ids(stack.ingest(*batches, metadata=metadata)))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert results == [expected] * 4
    listed = [e.event_id for e in stack.all_events(reader)]
    assert sorted(listed) == sorted(i for batch in expected for i in batch)


def _sender(
    stack: Stack, batch: list[audit_pb.AuditEvent], outcome: list[list[list[str]]]
) -> threading.Thread:
    """A thread, not started yet, that ingests batch and adds the acked ids to outcome."""
    metadata = stack.service_metadata()
    return threading.Thread(
        target=lambda: outcome.append(acked_ids(stack.ingest(batch, metadata=metadata)))
    )


def _wait_for_ingest_lock_waiter(db: Database) -> None:
    """Block until another PostgreSQL session waits for the ingest lock our transaction holds."""
    deadline = time.monotonic() + 10
    # pg_locks shows a bigint advisory key as its high and low 32 bits.
    key = use_cases.INGEST_LOCK_KEY & 0xFFFF_FFFF_FFFF_FFFF
    query = text(
        "SELECT count(*) FROM pg_locks"
        " WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid::bigint = :high AND objid::bigint = :low"
    )
    while time.monotonic() < deadline:
        with db.engine.connect() as connection:
            if connection.scalar(query, {"high": key >> 32, "low": key & 0xFFFF_FFFF}):
                return
        time.sleep(0.02)
    raise AssertionError("the ingest never waited for the ingest lock")


def test_a_batch_racing_an_uncommitted_duplicate_waits_for_it_and_stores_once(
    stack: Stack, audit_url: str, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="loansuite")
    reader = stack.user()
    raced, fresh = make_event(reader.organization_id), make_event(reader.organization_id)
    outcome: list[list[list[str]]] = []
    sender = _sender(stack, [raced, fresh], outcome)
    other_replica = Database(audit_url)
    try:
        with other_replica.write() as session:
            events = parse_events(records_from_proto([raced]))
            use_cases.ingest_events(session, events, now=datetime.now(UTC))
            sender.start()
            if backend == "postgresql":
                _wait_for_ingest_lock_waiter(other_replica)
            else:
                time.sleep(0.2)  # it waits for SQLite's write lock
        sender.join(30)
    finally:
        other_replica.dispose()

    # Inside the lock the sender re-checked, found `raced` stored, and appended `fresh` only.
    assert outcome == [[[raced.event_id, fresh.event_id]]]
    listed = stack.all_events(reader)
    assert [(e.event_id, e.sequence) for e in listed] == [(raced.event_id, 1), (fresh.event_id, 2)]
    assert "unexpected failure" not in caplog.messages


def test_interleaved_writers_take_turns_instead_of_deadlocking(
    stack: Stack, audit_url: str, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite has one writer at a time, so writers cannot interleave")
    caplog.set_level(logging.INFO, logger="loansuite")
    reader = stack.user()
    first, second = make_event(reader.organization_id), make_event(reader.organization_id)
    outcome: list[list[list[str]]] = []
    sender = _sender(stack, [first, second], outcome)
    other_writer = Database(audit_url)
    now = datetime.now(UTC)
    try:
        with other_writer.write() as session:
            use_cases.ingest_events(session, parse_events(records_from_proto([second])), now=now)
            sender.start()
            # Without the lock the sender would hold `first` and wait for `second`
            # while we wait for `first`: a deadlock. With it, it holds nothing yet.
            _wait_for_ingest_lock_waiter(other_writer)
            use_cases.ingest_events(session, parse_events(records_from_proto([first])), now=now)
        sender.join(30)
    finally:
        other_writer.dispose()

    assert outcome == [[[first.event_id, second.event_id]]]
    listed = stack.all_events(reader)
    assert [(e.event_id, e.sequence) for e in listed] == [(second.event_id, 1), (first.event_id, 2)]
    assert "unexpected failure" not in caplog.messages
