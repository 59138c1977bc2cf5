"""The outbox relay: late commits, recovery with health and figures, one relay per SQLite file."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.shared.db import Database
from services.shared.metrics import outboxes
from services.shared.relay import OutboxRelay
from services.shared.server import create_server
from tests.shared.relay_support import (
    RecordingSink,
    RelayOutbox,
    commit_events,
    grpc_relay,
    outbox_database,
    write_events,
)
from tests.support import AuditSpy, eventually, free_port, outbox_health, serve_spy

HealthStatus = health_pb2.HealthCheckResponse


@pytest.fixture
def database_url(new_database_url: Callable[[str], str]) -> str:
    return new_database_url("relay")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = outbox_database(database_url)
    yield database
    database.dispose()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_row_that_commits_after_later_rows_is_delivered_too(db: Database) -> None:
    sink = RecordingSink()
    relay = OutboxRelay(db, RelayOutbox, sink, source="test", poll_seconds=0.05)
    relay.start()
    try:
        with Session(db.engine) as held, held.begin():
            [late] = write_events(held)  # takes its id now, commits at the end of the block
            early = commit_events(db, 3)
            eventually(lambda: set(sink.delivered) >= set(early))
            assert late not in sink.delivered
            late_id = held.scalar(select(RelayOutbox.id).where(RelayOutbox.event_id == late))
        eventually(lambda: late in sink.delivered)
    finally:
        relay.stop()

    with db.read() as session:
        early_ids = session.scalars(select(RelayOutbox.id).where(RelayOutbox.event_id.in_(early)))
        assert late_id is not None
        assert late_id < min(early_ids)  # "ids above the last one seen" would skip it for ever
    assert sorted(sink.delivered) == sorted([*early, late])
    assert relay.backlog() == 0


def test_an_idle_relay_ends_its_stream_to_audit(db: Database) -> None:
    spy, port = AuditSpy(), free_port()
    audit = serve_spy(spy, port)
    relay, channel = grpc_relay(db, port, poll_seconds=0.05)
    relay.start()
    try:
        first = commit_events(db, 2)
        eventually(lambda: spy.event_ids == first)
        # Nothing more to deliver: within a poll the stream is closed, and audit's call ends.
        eventually(lambda: spy.ended == len(spy.tokens) == 1, "the idle relay's stream ended")
        second = commit_events(db)
        eventually(lambda: spy.event_ids == first + second)
        eventually(lambda: spy.ended == len(spy.tokens) == 2, "the next stream ended too")
    finally:
        relay.stop()
        channel.close()
        audit.stop(0)


def test_the_relay_reports_an_outage_and_recovers_when_audit_returns(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="loansuite.relay")
    spy, port = AuditSpy(), free_port()
    audit = serve_spy(spy, port)
    host = create_server([], "127.0.0.1:0", max_workers=2)  # the service the relay belongs to
    relay, channel = grpc_relay(
        db, port, poll_seconds=0.05, max_backoff_seconds=0.5, stall_seconds=0.5, report_seconds=0.1
    )
    relay.start(health=host.set_health)
    try:
        first = commit_events(db)
        eventually(lambda: spy.event_ids == first)
        # Marked delivered too, before audit goes: the spy keeps a batch before its ack
        # reaches the relay, and a batch whose ack was lost stays pending.
        eventually(lambda: relay.backlog() == 0)
        serving_before = outbox_health(host.port, "test")
        audit.stop(0)
        during = commit_events(db, 3)  # one commit: every failed round carries all three
        eventually(lambda: outbox_health(host.port, "test") == HealthStatus.NOT_SERVING)
        eventually(lambda: relay.stats.snapshot().pending == 3)
        audit = serve_spy(spy, port)
        eventually(lambda: relay.backlog() == 0)
        eventually(lambda: outbox_health(host.port, "test") == HealthStatus.SERVING)
        figures = relay.stats.snapshot()
        registered = [s.source for s in outboxes.snapshot()]
    finally:
        relay.stop()
        channel.close()
        audit.stop(0)
        host.stop(0)

    assert serving_before == HealthStatus.SERVING
    assert sorted(spy.event_ids) == sorted([*first, *during])
    assert figures.delivered_total == 4
    assert figures.failed_attempts_total > 0
    # Each failed round sent the three again; the round that succeeded was a re-send too.
    assert figures.resent_total == 3 * figures.failed_attempts_total
    assert figures.state == "delivering"
    assert "test" in registered
    messages = [record.getMessage() for record in caplog.records]
    assert {"audit delivery failed; retrying", "audit delivery stalled"} <= set(messages)
    assert messages.count("audit delivery recovered") == 1
    reports = [r for r in caplog.records if r.getMessage() == "outbox relay report"]
    assert any(getattr(r, "pending", 0) == 3 for r in reports)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_second_relay_on_one_sqlite_file_stands_by_and_takes_over(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="loansuite.relay")
    ours, theirs = outbox_database(database_url), Database(database_url)
    our_sink, their_sink = RecordingSink(), RecordingSink()
    reports: list[tuple[str, bool | None]] = []
    first = OutboxRelay(ours, RelayOutbox, our_sink, source="test", poll_seconds=0.05)
    second = OutboxRelay(theirs, RelayOutbox, their_sink, source="test", poll_seconds=0.05)
    first.start()
    second.start(health=lambda name, serving: reports.append((name, serving)))
    try:
        before = commit_events(theirs, 5)  # written by the standby's process
        eventually(lambda: sorted(our_sink.delivered) == sorted(before))
        standing_by = second.stats.snapshot().state
        first.stop()
        after = commit_events(theirs, 2)
        eventually(lambda: sorted(their_sink.delivered) == sorted(after))
    finally:
        first.stop()
        second.stop()
        ours.dispose()
        theirs.dispose()

    assert standing_by == "standby"
    assert their_sink.delivered == after  # nothing of `before` was sent twice
    assert reports == [("loansuite.outbox.test", None), ("loansuite.outbox.test", True)]
    messages = [record.getMessage() for record in caplog.records]
    assert "another relay delivers this SQLite database's outbox; standing by" in messages
    assert "outbox relay took over" in messages
    database = Path(database_url.removeprefix("sqlite:///"))
    assert Path(f"{database}.relay_test_outbox.relay.lock").exists()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_relays_sharing_a_postgresql_database_deliver_each_event_once(
    db: Database, database_url: str
) -> None:
    replica = Database(database_url)
    sinks = [RecordingSink(), RecordingSink()]
    relays = [
        OutboxRelay(database, RelayOutbox, sink, source="test", batch_size=10, poll_seconds=0.01)
        for database, sink in zip((db, replica), sinks, strict=True)
    ]
    for relay in relays:
        relay.start()
    try:
        written = write_concurrently([db, replica], threads=8, commits=25)
        eventually(lambda: relays[0].backlog() == 0)
    finally:
        for relay in relays:
            relay.stop()
        replica.dispose()

    sent = Counter(event_id for sink in sinks for event_id in sink.delivered)
    assert set(sent) == set(written)
    assert max(sent.values()) == 1
    assert all(sink.delivered for sink in sinks)  # both relays took part
    assert sum(relay.stats.snapshot().delivered_total for relay in relays) == len(written)


def write_concurrently(databases: list[Database], *, threads: int, commits: int) -> list[str]:
    """Commit from several threads at once, two events a commit, across the databases."""
    written: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for _ in range(commits):
            ids = commit_events(databases[n % len(databases)], 2)
            with lock:
                written.extend(ids)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return written
