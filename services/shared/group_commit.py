"""Group commit: concurrent writes share one transaction, each in its own savepoint.

A commit costs an fsync (SQLite with ``synchronous=FULL``) or a round trip and
a WAL flush (PostgreSQL), and SQLite admits one writer at a time anyway. So
writes that arrive while another batch is committing wait, then go together:

- a caller that finds no batch in progress leads; it takes every queued write
  (up to ``max_batch``), opens one transaction, and runs the writes one after
  the other. If one raises, the transaction is rolled back and the batch runs
  again with each write in its own SAVEPOINT: a write that raises then rolls
  back only its savepoint, and what it left in ``session.info`` (change
  notifications, outbox flags) goes with it; its caller gets its own
  exception.
- the leader commits once. Only then is anyone answered: nobody hears of a
  write that is not durable. If the commit fails, nothing of the batch was
  written and every caller in it gets ``CommitFailedError`` (UNAVAILABLE).
- callers that came in meanwhile form the next batch; the oldest of them
  leads it.

No extra thread for callers on threads: the leader is one of them, so a lone
write costs what it did before, and under load the batch grows by itself. A
caller on an event loop (suspend.py) cannot lead, since a batch would hold up
the loop: its write waits as a future, and when such a write is to lead, one
thread of the group commit's own leads for it. Its batch is settled on the
loop with one call per batch.

With ``writes_on_loop`` (SQLite), that thread begins the transaction and
commits it, the two steps that may wait (for another writer, for the fsync),
and hands the writes in between to the loop. A SQLite statement takes
microseconds, but on the leader's thread each one gave up the GIL and waited
to win it back from the loop, several times what it ran; the loop holds the
GIL anyway. On PostgreSQL a statement is a round trip, which would hold the
loop up, so the writes stay on the leader's thread, and go to the server
together (``driver_statement.deferred_sends``): every write's idempotency claim
(its ``ahead``) before the first write runs, then a write's statements that
return nothing (the INSERTs, the stored response, the NOTIFY) with the next
statement whose answer is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Generic, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from services.shared.driver_statement import deferred_sends
from services.shared.errors import UnavailableError
from services.shared.suspend import can_suspend, wait_for

__all__ = ["DEFAULT_MAX_BATCH", "CommitFailedError", "GroupCommit"]

log = logging.getLogger("loansuite.db")

DEFAULT_MAX_BATCH: Final = 64
# How often a leader waiting for a loop to run a batch's writes checks that it still runs.
_LOOP_PATIENCE_SECONDS: Final = 1.0

T = TypeVar("T")


class CommitFailedError(UnavailableError):
    """The shared transaction could not commit: nothing of the batch was written; retry."""

    as_status = True  # a transport outcome: retry policies and balancers must see it
    reason = "COMMIT_FAILED"
    message = "the write could not be made durable; nothing was written; retry"


class _Pending(Generic[T]):
    """One caller's write and, once its batch is settled, its outcome."""

    __slots__ = ("ahead", "caller", "error", "finished", "settled", "value", "wake", "work")

    def __init__(
        self, work: Callable[[Session], T], settled: asyncio.Future[None] | None = None
    ) -> None:
        self.work = work
        # What the write sends before any write of its batch runs, where statements are
        # sent together (its idempotency claim): the write itself reads the answer.
        self.ahead: Callable[[Session], object] | None = getattr(work, "ahead", None)
        # The leader runs the write as its caller: the request id and trace that the
        # write's audit event and log lines carry are the caller's, not the leader's.
        self.caller = contextvars.copy_context()
        self.finished = False
        self.value: T | None = None
        self.error: BaseException | None = None
        # A caller on a thread: set once, finished or its turn to lead. On a loop: done
        # once finished (it never leads).
        self.wake = threading.Event()
        self.settled = settled

    def run(self, session: Session) -> None:
        info = _snapshot(session.info)
        try:
            with session.begin_nested():
                self.value = self.caller.run(self.work, session)
        except Exception as exc:  # this write alone is undone; the batch goes on
            _restore(session.info, info)
            self.error = exc

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # set by run() when no error


class GroupCommit:
    """Runs writes in shared transactions opened by ``begin``; one batch at a time.

    Each caller is woken once: when its write is settled, or when it is its turn
    to lead (the oldest waiting write leads the next batch).
    """

    def __init__(
        self,
        begin: Callable[[], contextlib.AbstractContextManager[Session]],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        writes_on_loop: bool = False,
    ) -> None:
        self._begin = begin
        self._max_batch = max_batch
        self._writes_on_loop = writes_on_loop
        self._queue: list[_Pending[Any]] = []
        self._leading = False
        self._lock = threading.Lock()
        # Leads for callers on a loop; its one thread starts with the first such write.
        self._leader = ThreadPoolExecutor(1, thread_name_prefix="group-commit")

    def waiting(self) -> int:
        """How many writes wait for the next batch."""
        with self._lock:
            return len(self._queue)

    def run(self, work: Callable[[Session], T]) -> T:
        """Run work in its own savepoint of a shared transaction; return once that committed.

        On an event loop (``suspend.can_suspend()``) the caller is suspended meanwhile.
        """
        if can_suspend():
            settled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            pending = _Pending(work, settled)
            if self._enqueue(pending):
                self._leader.submit(self._lead)
            wait_for(settled)
            return pending.outcome()
        pending = _Pending(work)
        if not self._enqueue(pending):
            pending.wake.wait()
            if pending.finished:
                return pending.outcome()
        self._lead()  # this caller's own write is at the head of the queue
        return pending.outcome()

    def close(self) -> None:
        """Stop the thread that leads for callers on a loop, once its batch is done."""
        self._leader.shutdown(wait=True)

    def _enqueue(self, pending: _Pending[Any]) -> bool:
        """Queue a write; True if no batch is in progress, so that it leads the next."""
        with self._lock:
            self._queue.append(pending)
            leads = not self._leading
            self._leading = True
        return leads

    def _lead(self) -> None:
        """Commit the oldest waiting writes as a batch, then hand over."""
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
        try:
            self._commit(batch)
        finally:
            self._hand_over()

    def _hand_over(self) -> None:
        """Wake the oldest waiting write to lead the next batch, or stop leading."""
        with self._lock:
            head = self._queue[0] if self._queue else None
            if head is None:
                self._leading = False
            elif head.settled is None:
                head.wake.set()
        if head is not None and head.settled is not None:
            self._leader.submit(self._lead)

    def _commit(self, batch: list[_Pending[Any]]) -> None:
        try:
            if not self._all_at_once(batch):
                with self._begin() as session:
                    for pending in batch:
                        pending.run(session)
        except BaseException as exc:
            log.error("group commit failed", exc_info=exc, extra={"writes": len(batch)})
            failure = CommitFailedError()
            failure.__cause__ = exc
            for pending in batch:
                pending.error = failure
            if not isinstance(exc, Exception):
                raise  # an interpreter exit: the callers were answered, this thread ends
        finally:
            on_loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for pending in batch:
                pending.finished = True
                if pending.settled is None:
                    pending.wake.set()
                else:
                    on_loops.setdefault(pending.settled.get_loop(), []).append(pending.settled)
            for loop, settled in on_loops.items():
                with contextlib.suppress(RuntimeError):  # a loop closed since: no one to tell
                    loop.call_soon_threadsafe(_settle, settled)

    def _all_at_once(self, batch: list[_Pending[Any]]) -> bool:
        """Try the batch with no savepoints; False, with nothing written, if a write raised.

        Writes rarely fail inside the transaction (most refusals come before it), and
        two savepoint statements per write are a third of a small write's round trips.
        So the batch runs without them first; only when a write raises is the whole
        transaction rolled back and the batch run again, each write in its savepoint.
        A lone write needs no second run: its own error is its answer.

        Where a write's statements that return nothing go with the next statement
        (``driver_statement.deferred_sends``, PostgreSQL), a database error may surface
        in a later statement, a later write, or once the last is sent, where the write
        that caused it could not handle it. So a database error runs the batch again
        with savepoints, which send each statement at once, even for a lone write.
        """
        failed: list[_Pending[Any]] = []
        deferred = False

        def each(step: Callable[[_Pending[Any]], None]) -> None:
            for pending in batch:
                try:
                    step(pending)
                except Exception as exc:
                    pending.error = exc
                    failed.append(pending)
                    raise _Undo from exc

        def run_all(session: Session) -> None:
            def run(pending: _Pending[Any]) -> None:
                pending.value = pending.caller.run(pending.work, session)

            each(run)

        def run_all_sent_together(session: Session) -> None:
            nonlocal deferred

            def send_ahead(pending: _Pending[Any]) -> None:
                if pending.ahead is not None:
                    pending.caller.run(pending.ahead, session)

            connection = session.connection()
            try:
                with deferred_sends(connection) as deferred:
                    if deferred:  # every write's first statement, together
                        each(send_ahead)
                    run_all(session)
            except DBAPIError as exc:  # sent as the block ended (each raises _Undo)
                raise _Undo from exc

        loop = self._loop_of(batch)
        try:
            with self._begin() as session:
                if loop is None:
                    run_all_sent_together(session)
                else:
                    session.connection()  # BEGIN here, off the loop: it may wait its turn
                    _on_loop(loop, lambda: run_all(session))
        except _Undo:
            if len(batch) > 1 or not failed or (deferred and _from_database(failed[0].error)):
                for pending in failed:
                    pending.error = None
                return False
        return True

    def _loop_of(self, batch: list[_Pending[Any]]) -> asyncio.AbstractEventLoop | None:
        """The loop to run the batch's writes on: a loop caller's, where writes go there."""
        if not self._writes_on_loop:
            return None
        return next((p.settled.get_loop() for p in batch if p.settled is not None), None)


def _on_loop(loop: asyncio.AbstractEventLoop, work: Callable[[], None]) -> None:
    """Run work on loop and wait for it; here instead if the loop stops before running it,
    or if this is the loop's own thread (which waiting would hold up for good)."""
    if _running_loop() is loop:
        work()
        return
    outcome: futures.Future[None] = futures.Future()

    def run() -> None:
        if not outcome.set_running_or_notify_cancel():  # run here meanwhile
            return
        try:
            work()
        except BaseException as exc:  # raised where the batch is led
            outcome.set_exception(exc)
        else:
            outcome.set_result(None)

    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError:  # the loop is closed
        outcome.cancel()
    while not outcome.cancelled():
        try:
            outcome.result(timeout=_LOOP_PATIENCE_SECONDS)
            return
        except futures.TimeoutError:
            if not loop.is_running():
                outcome.cancel()  # fails if the loop took it after all: then wait for it
    work()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _settle(settled: list[asyncio.Future[None]]) -> None:
    for future in settled:
        if not future.done():  # its call may have been cancelled meanwhile
            future.set_result(None)


def _from_database(error: BaseException | None) -> bool:
    """Whether error is a database error, or was raised while handling one."""
    while error is not None:
        if isinstance(error, DBAPIError):
            return True
        error = error.__cause__ or error.__context__
    return False


class _Undo(Exception):
    """Rolls back a batch tried without savepoints, so that it runs again with them."""


def _snapshot(info: dict[Any, Any]) -> dict[Any, Any]:
    # Lists are copied: a rolled-back write must not leave its entries behind.
    return {key: list(value) if isinstance(value, list) else value for key, value in info.items()}


def _restore(info: dict[Any, Any], saved: dict[Any, Any]) -> None:
    info.clear()
    info.update(saved)
