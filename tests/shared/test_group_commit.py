"""Group commit: concurrent writes share one transaction, each in its own savepoint.

Real SQLite and PostgreSQL databases. A batch is formed deterministically: the
first write holds the leader until the others have queued behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, Text, text
from sqlalchemy import insert as insert_into
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session

from services.shared import context
from services.shared.db import Database
from services.shared.driver_statement import DriverStatement
from services.shared.errors import NotFoundError, ValidationError
from services.shared.group_commit import CommitFailedError
from services.shared.idempotency import IdempotencyKey, IdempotencyMixin, keyed, run_idempotent
from tests.shared.group_commit_support import commits_of, items_database, submitted
from tests.support import eventually

WRITERS = 12


class Base(DeclarativeBase):
    pass


class Record(IdempotencyMixin, Base):
    __tablename__ = "idempotency_records"


@pytest.fixture
def db(new_database_url: Callable[[str], str]) -> Iterator[Database]:
    with items_database(new_database_url("group")) as database:
        Base.metadata.create_all(database.engine)
        yield database


def insert(item_id: int, parent_id: int | None = None) -> Callable[[Session], int]:
    def work(session: Session) -> int:
        params = {"id": item_id, "note": f"item {item_id}", "parent": parent_id}
        session.execute(text("INSERT INTO items VALUES (:id, :note, :parent)"), params)
        return item_id

    return work


def items(db: Database) -> list[int]:
    with db.read() as session:
        return list(session.execute(text("SELECT id FROM items ORDER BY id")).scalars())


def in_one_batch(
    db: Database, works: list[Callable[[Session], Any]], request_ids: list[str] | None = None
) -> list[Any]:
    """Run works concurrently in one batch, queued behind a gate that holds the leader.

    Each entry of the result is the work's value or the exception it raised. With
    request_ids, each work's caller serves the call of that request id.
    """
    started, release = threading.Event(), threading.Event()

    def gate(session: Session) -> None:
        started.set()
        release.wait(timeout=30)

    with ThreadPoolExecutor(len(works) + 1) as pool:
        held = pool.submit(submitted, db, gate)
        assert started.wait(timeout=30), "the gate never started"
        ids = request_ids or [""] * len(works)
        futures = [pool.submit(submitted, db, work, ids[i]) for i, work in enumerate(works)]
        eventually(lambda: db.writes_waiting() == len(works), "the writes queue")
        release.set()
        assert held.result(timeout=30) is None
        return [future.result(timeout=30) for future in futures]


def test_writes_that_arrive_together_commit_together(db: Database) -> None:
    commits = commits_of(db)

    results = in_one_batch(db, [insert(i) for i in range(WRITERS)])

    assert results == list(range(WRITERS))  # each caller gets its own answer
    assert items(db) == list(range(WRITERS))
    assert len(commits) == 2  # the gate alone, then every write that queued behind it


def test_each_write_runs_in_its_callers_context(db: Database) -> None:
    """The leader runs every write of the batch, each as its own caller: the request id
    (and trace) that its audit event and its log lines carry is that caller's."""
    ids = [f"request-{i}" for i in range(WRITERS)]

    seen = in_one_batch(db, [lambda _: context.current_request_id()] * WRITERS, ids)

    assert seen == ids


def test_a_failing_write_rolls_back_only_itself(db: Database) -> None:
    committed: list[list[str]] = []
    db.on_commit(lambda session: committed.append(list(session.info.get("notes", []))))

    def noted(work: Callable[[Session], int], note: str) -> Callable[[Session], int]:
        def run(session: Session) -> int:
            session.info.setdefault("notes", []).append(note)
            return work(session)

        return run

    def refused(session: Session) -> int:
        noted(insert(100), "refused")(session)
        raise NotFoundError("no such thing", reason="THING_NOT_FOUND")

    results = in_one_batch(db, [noted(insert(1), "one"), refused, noted(insert(2), "two")])

    assert results[0] == 1
    assert isinstance(results[1], NotFoundError)
    assert results[2] == 2
    assert items(db) == [1, 2]
    assert committed[-1] == ["one", "two"]  # what the refused write noted went with it


def test_a_commit_that_fails_answers_everyone_and_writes_nothing(db: Database) -> None:
    # A deferred foreign key is checked at COMMIT: the write itself succeeds, the commit not.
    works = [insert(1), insert(2, parent_id=999), insert(3)]

    results = in_one_batch(db, works)

    assert all(isinstance(result, CommitFailedError) for result in results)
    assert results[0].reason == "COMMIT_FAILED"
    assert items(db) == []
    assert db.submit(insert(4)) == 4  # the next batch is not affected
    assert items(db) == [4]


def key(request_id: str, request: bytes = b"request") -> IdempotencyKey:
    return IdempotencyKey.of(scope="user-1", rpc="Insert", request_id=request_id, request=request)


def counted(item_id: int, runs: list[int]) -> Callable[[Session], bytes]:
    def work(session: Session) -> bytes:
        runs.append(item_id)
        insert(item_id)(session)
        return f"created {item_id}".encode()

    return work


def test_a_retry_in_the_same_batch_replays_the_first_answer(db: Database) -> None:
    runs: list[int] = []
    works = [keyed(db, Record, key("same"), counted(n, runs)) for n in (1, 2, 3)]
    reused = keyed(db, Record, key("same", b"another request"), counted(4, runs))

    answers = in_one_batch(db, [*works, reused])

    assert answers[:3] == [b"created 1"] * 3
    assert isinstance(answers[3], ValidationError)
    assert answers[3].reason == "REQUEST_ID_REUSED"
    # The refusal made the batch run again, each write in its savepoint: the first write
    # ran twice, was committed once, and the two retries never ran their own.
    assert runs == [1, 1]
    assert items(db) == [1]


def test_retries_in_one_batch_run_the_write_once_without_running_the_batch_again(
    db: Database,
) -> None:
    runs: list[int] = []
    works = [keyed(db, Record, key("again"), counted(n, runs)) for n in (1, 2, 3)]

    answers = in_one_batch(db, works)

    assert answers == [b"created 1"] * 3
    assert runs == [1]  # the retries read the first one's answer in the same transaction
    assert items(db) == [1]


def test_a_retry_in_a_later_batch_replays_and_a_reused_id_is_refused(db: Database) -> None:
    runs: list[int] = []
    first = run_idempotent(db, Record, key("later"), counted(1, runs))

    again = run_idempotent(db, Record, key("later"), counted(2, runs))
    with pytest.raises(ValidationError) as reused:
        run_idempotent(db, Record, key("later", b"another request"), counted(3, runs))

    assert (first, again, runs) == (b"created 1", b"created 1", [1])
    assert reused.value.reason == "REQUEST_ID_REUSED"
    assert items(db) == [1]


def test_a_keyed_write_that_fails_leaves_its_key_free(db: Database) -> None:
    def failing(session: Session) -> bytes:
        insert(7)(session)
        raise NotFoundError("gone", reason="GONE")

    with pytest.raises(NotFoundError):
        run_idempotent(db, Record, key("free"), failing)

    assert run_idempotent(db, Record, key("free"), counted(8, [])) == b"created 8"
    assert items(db) == [8]


_ITEMS = Table(
    "items",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("note", Text, nullable=False),
    Column("parent_id", Integer),
)
_ADD = DriverStatement(insert_into(_ITEMS))


def sent(item_id: int) -> Callable[[Session], int]:
    """A write whose INSERT is sent for its effect alone: on PostgreSQL it goes with the
    next statement, so its error, if any, surfaces later than the write."""

    def work(session: Session) -> int:
        _ADD.send(session.connection(), {"id": item_id, "note": "sent", "parent_id": None})
        return item_id

    return work


@pytest.mark.parametrize(
    "third",
    [sent(2), insert(2)],
    ids=["the failure found as the batch ends", "found by the next write's statement"],
)
def test_a_write_whose_sent_statement_fails_rolls_back_only_itself(
    db: Database, third: Callable[[Session], int]
) -> None:
    db.submit(insert(5))

    results = in_one_batch(db, [sent(1), sent(5), third, sent(3)])

    assert [results[0], results[2], results[3]] == [1, 2, 3]
    assert isinstance(results[1], IntegrityError)  # its own error, though found later
    assert items(db) == [1, 2, 3, 5]


def test_a_lone_write_handles_the_error_of_its_own_sent_statement(db: Database) -> None:
    db.submit(insert(5))

    def add_or_refuse(session: Session) -> int:
        try:
            return sent(5)(session)
        except IntegrityError as exc:
            raise ValidationError([("id", "ID_TAKEN", "is taken")]) from exc

    with pytest.raises(ValidationError) as refused:
        db.submit(add_or_refuse)

    assert refused.value.reason == "ID_TAKEN"
    assert items(db) == [5]


def test_on_postgresql_every_claim_of_a_batch_goes_before_its_first_write(db: Database) -> None:
    claimed_when_each_ran: list[int] = []

    def counting(item_id: int) -> Callable[[Session], bytes]:
        def work(session: Session) -> bytes:
            count = text("SELECT count(*) FROM idempotency_records")
            claimed_when_each_ran.append(session.execute(count).scalar_one())
            insert(item_id)(session)
            return f"created {item_id}".encode()

        return work

    works = [keyed(db, Record, key(f"ahead-{n}"), counting(n)) for n in range(4)]
    answers = in_one_batch(db, works)

    assert answers == [f"created {n}".encode() for n in range(4)]
    # PostgreSQL sends a batch's claims together before any write runs; elsewhere each
    # write claims its key as it runs.
    assert claimed_when_each_ran == ([4] * 4 if not db.is_sqlite else [1, 2, 3, 4])
    assert items(db) == [0, 1, 2, 3]
