"""Connections: pinged after a pause, so one lost meanwhile fails no call; and the read
connections an event loop's thread keeps, one per database, used read after read and
replaced when a statement fails.

Real SQLite and PostgreSQL databases; the loop's thread is a plain thread that asks to
hold its connections, as the grpc.aio engine's thread does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from services.shared import db as db_module
from services.shared.db import Database, hold_read_connections, libpq_dsn
from services.shared.errors import NotFoundError

T = TypeVar("T")


@pytest.fixture
def db(new_database_url: Callable[[str], str]) -> Iterator[Database]:
    database = Database(new_database_url("held"))
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE items (note TEXT NOT NULL)"))
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def loop_thread() -> Iterator[Callable[[Callable[[], T]], T]]:
    """Runs functions one at a time on one thread that holds its read connections."""
    with ThreadPoolExecutor(max_workers=1, initializer=hold_read_connections) as thread:
        yield lambda fn: thread.submit(fn).result(10)


def reader(db: Database) -> Callable[[], tuple[Connection, int]]:
    """A read: the connection it ran on, and the rows it saw."""

    def read() -> tuple[Connection, int]:
        with db.reading() as connection:
            return connection, connection.execute(text("SELECT count(*) FROM items")).scalar_one()

    return read


def insert(db: Database, note: str) -> None:
    with db.write() as session:
        session.execute(text("INSERT INTO items (note) VALUES (:note)"), {"note": note})


def test_the_loop_reads_on_one_connection_and_sees_each_commit(
    db: Database, loop_thread: Callable[[Callable[[], Any]], Any]
) -> None:
    read = reader(db)
    first, seen = [], []
    for note in ("a", "b", "c"):
        insert(db, note)  # committed by another thread
        connection, count = loop_thread(read)
        first.append(connection)
        seen.append(count)

    assert seen == [1, 2, 3]  # no snapshot is held between reads
    assert first[0] is first[1] is first[2]
    assert not first[0].closed
    # The held connection is not the pool's to lend: another thread's read takes its own
    # and gives it back.
    with db.reading() as other:
        assert other.connection.dbapi_connection is not first[0].connection.dbapi_connection
    assert other.closed


def test_a_failed_statement_gives_up_the_connection_and_a_refusal_does_not(
    db: Database, loop_thread: Callable[[Callable[[], Any]], Any]
) -> None:
    read = reader(db)
    held = loop_thread(read)[0]

    def refused() -> None:
        with db.reading() as connection:
            connection.execute(text("SELECT 1")).scalar_one()
            raise NotFoundError("no such item")

    def failed() -> None:
        with db.reading() as connection:
            connection.execute(text("SELECT no_such_column FROM items"))

    with pytest.raises(NotFoundError):
        loop_thread(refused)
    assert loop_thread(read)[0] is held
    with pytest.raises(SQLAlchemyError):
        loop_thread(failed)
    assert held.closed  # given back to the pool
    assert loop_thread(read) == (loop_thread(read)[0], 0)  # a new one, held in its place
    assert loop_thread(read)[0] is not held


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_connection_lost_while_idle_is_replaced_before_the_next_read(
    db: Database,
    loop_thread: Callable[[Callable[[], Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(db_module, "PING_AFTER_SECONDS", 0.0)  # every read counts as idle

    lost = loop_thread(lambda: backend_pid(db))
    terminate(db, lost)

    replaced = loop_thread(lambda: backend_pid(db))  # no error: the ping found it lost

    assert replaced != lost


def test_dispose_closes_the_held_connections(
    db: Database, loop_thread: Callable[[Callable[[], Any]], Any]
) -> None:
    connection: Connection = loop_thread(lambda: _enter(db))
    db.dispose()
    assert connection.closed


def _enter(db: Database) -> Connection:
    with db.reading() as connection:
        return connection


def test_threads_that_do_not_hold_take_pooled_connections(db: Database) -> None:
    seen: list[Any] = []
    barrier = threading.Barrier(2)

    def read() -> None:
        with db.reading() as connection:
            barrier.wait(5)  # both reads at once: two connections
            seen.append(connection.connection.dbapi_connection)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: read(), range(2)))

    assert len(seen) == 2
    assert seen[0] is not seen[1]
    assert db.engine.pool.checkedout() == 0  # type: ignore[attr-defined]  # both given back


def backend_pid(db: Database) -> int:
    with db.reading() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(db: Database, pid: int) -> None:
    """End the server process of a connection back in the pool, from a new connection."""
    with psycopg.connect(libpq_dsn(db.url), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_pooled_connection_idle_a_while_is_pinged_and_one_in_use_is_not(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In steady use: no ping, so the one call that finds its connection lost fails...
    monkeypatch.setattr(db_module, "PING_AFTER_SECONDS", 3600.0)
    lost = backend_pid(db)
    terminate(db, lost)
    with pytest.raises(DBAPIError) as failed:
        backend_pid(db)
    assert failed.value.connection_invalidated
    assert backend_pid(db) != lost  # ...and the pool replaced it

    # Idle past the bound: the ping finds it lost, and the pool hands out another.
    monkeypatch.setattr(db_module, "PING_AFTER_SECONDS", 0.0)
    lost = backend_pid(db)
    terminate(db, lost)
    assert backend_pid(db) != lost
    with db.write() as session:  # writes take pooled connections the same way
        session.execute(text("INSERT INTO items (note) VALUES ('after')"))
