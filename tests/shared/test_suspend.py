"""Synchronous code run on an event loop, suspended where it waits (suspend.py), and
group-committed writes whose callers wait that way.

Real SQLite and PostgreSQL databases and a real event loop. A batch is formed as in
test_group_commit: a first write, from a thread, holds the leader until the others
have queued behind it.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.shared import context, group_commit
from services.shared.db import Database
from services.shared.errors import NotFoundError
from services.shared.group_commit import CommitFailedError
from services.shared.suspend import can_suspend, run_suspendable, wait_for
from tests.shared.group_commit_support import commits_of, items_database, submitted
from tests.support import eventually

_NOTE: contextvars.ContextVar[str] = contextvars.ContextVar("note", default="")


def test_code_waits_suspended_and_the_loop_runs_others_meanwhile() -> None:
    ran: list[str] = []

    def waits(gate: asyncio.Future[str]) -> str:
        assert can_suspend()
        ran.append("before")
        value = wait_for(gate)  # suspends: the loop goes on with other tasks
        ran.append("after")
        return value.upper()

    async def main() -> str:
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        waiting = asyncio.ensure_future(run_suspendable(waits, gate))
        await asyncio.sleep(0)
        ran.append("meanwhile")
        gate.set_result("done")
        return await waiting

    assert asyncio.run(main()) == "DONE"
    assert ran == ["before", "meanwhile", "after"]


def test_what_the_awaitable_raises_is_raised_where_the_code_waits() -> None:
    async def fails() -> None:
        raise LookupError("missing")

    def waits() -> str:
        try:
            wait_for(fails())
        except LookupError as exc:
            return f"caught {exc}"
        return "not raised"

    assert asyncio.run(run_suspendable(waits)) == "caught missing"


def test_what_the_code_raises_ends_the_coroutine() -> None:
    def fails() -> None:
        wait_for(asyncio.sleep(0))
        raise NotFoundError("gone", reason="GONE")

    with pytest.raises(NotFoundError):
        asyncio.run(run_suspendable(fails))


def test_the_code_sees_the_coroutines_context_and_keeps_its_own_changes() -> None:
    def reads() -> tuple[str, str]:
        seen = _NOTE.get()
        _NOTE.set("changed inside")
        wait_for(asyncio.sleep(0))
        return seen, _NOTE.get()

    async def main() -> tuple[tuple[str, str], str]:
        _NOTE.set("outside")
        inside = await run_suspendable(reads)
        return inside, _NOTE.get()

    assert asyncio.run(main()) == (("outside", "changed inside"), "outside")


def test_code_not_run_suspendable_cannot_wait_this_way() -> None:
    assert not can_suspend()
    never_awaited = asyncio.Future[None](loop=asyncio.new_event_loop())
    with pytest.raises(RuntimeError, match="outside run_suspendable"):
        wait_for(never_awaited)
    never_awaited.get_loop().close()


@pytest.fixture
def db(new_database_url: Callable[[str], str]) -> Iterator[Database]:
    with items_database(new_database_url("suspended")) as database:
        yield database


def insert(item_id: int, parent_id: int | None = None) -> Callable[[Session], int]:
    def work(session: Session) -> int:
        params = {"id": item_id, "note": context.current_request_id(), "parent": parent_id}
        session.execute(text("INSERT INTO items VALUES (:id, :note, :parent)"), params)
        return item_id

    return work


def rows(db: Database) -> list[tuple[int, str]]:
    with db.read() as session:
        return [tuple(row) for row in session.execute(text("SELECT id, note FROM items"))]


def on_a_loop_behind_a_gate(
    db: Database, works: list[Callable[[Session], Any]], on_threads: int = 0
) -> tuple[list[Any], int]:
    """Submit works from coroutines on one loop (the last on_threads of them from threads
    instead), all queued behind a write that holds the leader; their outcomes (value or
    exception, in order), and how many times the loop ran while they waited."""
    started, release = threading.Event(), threading.Event()

    def gate(_session: Session) -> None:
        started.set()
        release.wait(timeout=30)

    async def main(pool: ThreadPoolExecutor) -> tuple[list[Any], int]:
        loop = asyncio.get_running_loop()
        on_loop = len(works) - on_threads
        calls = [
            run_suspendable(submitted, db, work, f"loop-{i}")
            for i, work in enumerate(works[:on_loop])
        ] + [
            loop.run_in_executor(pool, submitted, db, work, f"thread-{i}")
            for i, work in enumerate(works[on_loop:], on_loop)
        ]
        waiting = asyncio.gather(*calls)
        ticks = 0
        while db.writes_waiting() < len(works):  # the loop is free while they wait
            ticks += 1
            await asyncio.sleep(0.001)
        release.set()
        return await asyncio.wait_for(waiting, 30), ticks

    with ThreadPoolExecutor(on_threads + 1) as pool:
        held = pool.submit(submitted, db, gate, "gate")
        assert started.wait(timeout=30), "the gate never started"
        outcomes, ticks = asyncio.run(main(pool))
        assert held.result(timeout=30) is None
    return outcomes, ticks


def test_writes_waiting_on_a_loop_commit_together_each_as_its_caller(db: Database) -> None:
    commits = commits_of(db)

    outcomes, ticks = on_a_loop_behind_a_gate(db, [insert(i) for i in range(10)])

    assert outcomes == list(range(10))
    assert ticks > 0  # the loop ran on while the writes waited
    assert sorted(rows(db)) == [(i, f"loop-{i}") for i in range(10)]
    assert len(commits) == 2  # the gate, then the ten together


def test_writes_from_a_loop_and_from_threads_share_a_batch(db: Database) -> None:
    commits = commits_of(db)

    outcomes, _ = on_a_loop_behind_a_gate(db, [insert(i) for i in range(8)], on_threads=4)

    assert outcomes == list(range(8))
    notes = dict(rows(db))
    assert [notes[i] for i in range(8)] == [
        *(f"loop-{i}" for i in range(4)),
        *(f"thread-{i}" for i in range(4, 8)),
    ]
    assert len(commits) == 2


def test_a_refused_write_on_a_loop_gets_its_own_error_and_the_rest_commit(db: Database) -> None:
    def refused(session: Session) -> int:
        insert(100)(session)
        raise NotFoundError("no such thing", reason="THING_NOT_FOUND")

    outcomes, _ = on_a_loop_behind_a_gate(db, [insert(1), refused, insert(2)])

    assert outcomes[0] == 1
    assert outcomes[2] == 2
    assert isinstance(outcomes[1], NotFoundError)
    assert sorted(i for i, _ in rows(db)) == [1, 2]


def test_a_failed_commit_answers_every_caller_on_the_loop_and_writes_nothing(
    db: Database,
) -> None:
    # A deferred foreign key is checked at COMMIT: the write itself succeeds, the commit not.
    outcomes, _ = on_a_loop_behind_a_gate(db, [insert(1), insert(2, parent_id=999), insert(3)])

    assert all(isinstance(outcome, CommitFailedError) for outcome in outcomes)
    assert rows(db) == []
    assert asyncio.run(run_suspendable(db.submit, insert(4))) == 4  # the next batch is fine
    assert [i for i, _ in rows(db)] == [4]


def test_a_caller_cancelled_while_it_waits_leaves_the_others_answered(db: Database) -> None:
    started, release = threading.Event(), threading.Event()

    def gate(_session: Session) -> None:
        started.set()
        release.wait(timeout=30)

    async def main() -> list[Any]:
        cancelled = asyncio.ensure_future(run_suspendable(db.submit, insert(1)))
        kept = asyncio.ensure_future(run_suspendable(db.submit, insert(2)))
        await asyncio.to_thread(eventually, lambda: db.writes_waiting() == 2, "both queue")
        cancelled.cancel()
        release.set()
        return list(await asyncio.gather(cancelled, kept, return_exceptions=True))

    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(db.submit, gate)
        assert started.wait(timeout=30)
        outcomes = asyncio.run(main())
        assert held.result(timeout=30) is None

    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert outcomes[1] == 2
    # The cancelled call's write was queued before it was cancelled: like a call whose
    # client went away during its commit, it is written, and only its answer is lost.
    assert sorted(i for i, _ in rows(db)) == [1, 2]
    assert asyncio.run(run_suspendable(db.submit, insert(3))) == 3


def test_on_sqlite_a_batch_for_a_loop_runs_its_writes_on_the_loop(db: Database) -> None:
    threads: list[int] = []

    def noted(item_id: int) -> Callable[[Session], int]:
        def work(session: Session) -> int:
            threads.append(threading.get_ident())
            return insert(item_id)(session)

        return work

    outcomes, _ = on_a_loop_behind_a_gate(db, [noted(i) for i in range(4)], on_threads=1)

    assert outcomes == [0, 1, 2, 3]
    loop_thread = threading.get_ident()  # asyncio.run ran the loop on this thread
    # SQLite: a statement is quick, and on the loop it need not win the GIL back from
    # it. PostgreSQL: a statement is a round trip, which would hold the loop up.
    assert threads == [loop_thread if db.is_sqlite else threads[0]] * 4
    assert (threads[0] == loop_thread) is db.is_sqlite


def test_a_loop_that_stops_before_it_runs_the_writes_leaves_them_to_the_leader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(group_commit, "_LOOP_PATIENCE_SECONDS", 0.05)
    ran: list[int] = []
    stopped = asyncio.new_event_loop()  # never runs
    closed = asyncio.new_event_loop()
    closed.close()
    try:
        for loop in (stopped, closed):
            group_commit._on_loop(loop, lambda: ran.append(threading.get_ident()))
        stopped.run_until_complete(asyncio.sleep(0))  # the cancelled call does not run again
    finally:
        stopped.close()
    assert ran == [threading.get_ident()] * 2


def test_a_batch_led_on_its_loops_own_thread_runs_its_writes_there() -> None:
    ran: list[int] = []
    led = threading.Event()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)

    def lead() -> None:
        group_commit._on_loop(loop, lambda: ran.append(threading.get_ident()))
        led.set()

    thread.start()
    try:
        loop.call_soon_threadsafe(lead)
        assert led.wait(timeout=10)  # waiting for its own loop would never end
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
    assert ran == [thread.ident]


def test_what_the_writes_raise_on_the_loop_is_raised_where_the_batch_is_led() -> None:
    def fails() -> None:
        raise LookupError("from the loop")

    async def main() -> None:
        with pytest.raises(LookupError, match="from the loop"):
            await asyncio.to_thread(group_commit._on_loop, asyncio.get_running_loop(), fails)

    asyncio.run(main())
