"""Retention: delivered outbox rows and old idempotency records go, in batches; nothing else.

Real SQLite and PostgreSQL databases, the rows written as the services write
them, and a clock the test sets.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.orm import DeclarativeBase

from services.shared.db import Database
from services.shared.idempotency import IdempotencyMixin
from services.shared.metrics import retention
from services.shared.outbox import OutboxMixin
from services.shared.retention import RetentionSweep
from services.shared.settings import Retention

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
WEEK, DAY = 7 * 24 * 3600.0, 24 * 3600.0


class Base(DeclarativeBase):
    pass


class Outbox(OutboxMixin, Base):
    __tablename__ = "outbox_events"


class Record(IdempotencyMixin, Base):
    __tablename__ = "idempotency_records"


@pytest.fixture
def db(new_database_url: Callable[[str], str]) -> Iterator[Database]:
    database = Database(new_database_url("retention"))
    Base.metadata.create_all(database.engine)
    try:
        yield database
    finally:
        database.dispose()


def sweep(db: Database, *, batch: int = 500) -> RetentionSweep:
    return RetentionSweep(
        db,
        Retention(outbox_seconds=WEEK, idempotency_seconds=DAY),
        outbox=Outbox,
        idempotency=Record,
        batch=batch,
        clock=lambda: NOW,
        source=f"test-{uuid.uuid4().hex[:6]}",
    )


def add_events(db: Database, *, age: timedelta, delivered: bool, count: int = 1) -> list[str]:
    """Outbox rows written `age` ago, delivered at that moment or not at all."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    when = NOW - age
    with db.write() as session:
        for event_id in ids:
            row = {"event_id": event_id, "payload": "{}", "create_time": when}
            session.execute(insert(Outbox), row)
            if delivered:
                mark = update(Outbox).where(Outbox.event_id == event_id)
                session.execute(mark.values(delivered_time=when))
    return ids


def add_records(db: Database, *, age: timedelta, count: int = 1) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with db.write() as session:
        for request_id in ids:
            row = {
                "scope": "user-1",
                "rpc": "CreateLoan",
                "request_id": request_id,
                "fingerprint": "f",
                "response": b"",
                "create_time": NOW - age,
            }
            session.execute(insert(Record), row)
    return ids


def event_ids(db: Database) -> set[str]:
    with db.read() as session:
        return set(session.scalars(select(Outbox.event_id)))


def request_ids(db: Database) -> set[str]:
    with db.read() as session:
        return set(session.scalars(select(Record.request_id)))


def test_delivered_events_go_after_their_retention_and_undelivered_ones_never(
    db: Database,
) -> None:
    old_delivered = add_events(db, age=timedelta(days=8), delivered=True, count=3)
    recent_delivered = add_events(db, age=timedelta(days=6), delivered=True)
    ancient_pending = add_events(db, age=timedelta(days=400), delivered=False)

    deleted = sweep(db).sweep()

    assert deleted["outbox"] == len(old_delivered)
    assert event_ids(db) == {*recent_delivered, *ancient_pending}


def test_idempotency_records_go_after_their_retention(db: Database) -> None:
    old = add_records(db, age=timedelta(hours=25), count=2)
    fresh = add_records(db, age=timedelta(hours=23))

    deleted = sweep(db).sweep()

    assert deleted["idempotency"] == len(old)
    assert request_ids(db) == set(fresh)


def test_a_large_backlog_goes_in_small_batches_and_is_counted(db: Database) -> None:
    commits: list[int] = []
    db.on_commit(lambda _session: commits.append(1))
    add_events(db, age=timedelta(days=30), delivered=True, count=23)
    add_records(db, age=timedelta(days=3), count=12)
    commits.clear()
    sweeper = sweep(db, batch=5)

    deleted = sweeper.sweep()

    assert deleted == {"outbox": 23, "idempotency": 12}
    assert event_ids(db) == set()
    assert request_ids(db) == set()
    assert len(commits) == 5 + 3  # one short transaction per batch of at most five rows
    counted = {table: n for (source, table), n in retention.snapshot().items()}
    assert counted["outbox"] >= 23
    assert counted["idempotency"] >= 12


def test_two_sweepers_over_one_database_delete_each_row_once(db: Database) -> None:
    add_events(db, age=timedelta(days=30), delivered=True, count=40)
    first, second = sweep(db, batch=7), sweep(db, batch=7)

    total = first.sweep()["outbox"] + second.sweep()["outbox"]

    assert total == 40
    assert event_ids(db) == set()
