"""Following the log as it grows: polling by sequence, a bounded number of followers.

At most ``MAX_TAILS`` follow at once in a process, and of those at most a share
per user and per organization (services/shared/stream_quota.py); past either, the
call ends with gRPC status RESOURCE_EXHAUSTED.

Polling by sequence is sound here because ingest assigns sequences in commit
order under the log's lock: once a sequence is visible, every smaller one is
too, so a cursor never skips a late commit. Each follower reads on its own
pace in its own short read transactions; a slow one delays nobody, and
neither SQLite (WAL) nor PostgreSQL makes a reader block a writer.

A follower ends when its call ends (the server reports cancellation, deadline
and shutdown through the context's callbacks; on grpc.aio the bridge in
services/shared/aio_handlers.py does) and when the service closes; once
``close()`` returns, no follower touches the database.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from sqlalchemy.orm import Session

from services.audit import queries
from services.audit.models import AuditEvent
from services.shared.db import Database
from services.shared.errors import ServerStoppingError
from services.shared.stream_quota import StreamQuota

__all__ = ["MAX_TAILS", "POLL_SECONDS", "TailQuery", "Tails"]

# Each open stream holds a worker thread of the thread-pool server.
MAX_TAILS: Final = 8
# Well under the promised second from commit to delivery, at two cheap queries a poll.
POLL_SECONDS: Final = 0.2
_BATCH: Final = 500
# How long closing waits for reads in flight (each takes milliseconds).
_CLOSE_SECONDS: Final = 5.0


@dataclass(frozen=True)
class TailQuery:
    """What a follower asked for; after_sequence None means "from the end as it stands"."""

    action: str
    organization_id: str
    after_sequence: int | None


class Tails:
    """Hands out follower slots and runs each follower's polling loop."""

    def __init__(
        self,
        db: Database,
        *,
        limit: int = MAX_TAILS,
        per_user: int | None = None,
        per_organization: int | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._db = db
        self._quota = StreamQuota(
            total=limit,
            per_user=per_user or limit,
            per_organization=per_organization or limit,
            process_reason="TAIL_STREAMS_EXHAUSTED",
        )
        self._poll = poll_seconds
        self._state = threading.Condition()
        self._closed = False
        self._reads = 0  # read transactions in flight
        self._following: set[threading.Event] = set()

    @contextlib.contextmanager
    def slot(self, user_id: str, organization_id: str) -> Iterator[None]:
        """Hold one of the caller's places for the block; StreamLimitError when there is none."""
        with self._quota.slot(user_id, organization_id):
            yield

    def start(self, query: TailQuery) -> int:
        """The sequence after which the follower starts: its own, or the end of the log now."""
        if query.after_sequence is not None:
            return query.after_sequence
        with self._session() as session:
            return queries.last_sequence(session)

    def follow(
        self, query: TailQuery, cursor: int, stopped: threading.Event
    ) -> Iterator[AuditEvent]:
        """Matching events after cursor in sequence order as they commit, until stopped is set."""
        with self._state:
            self._following.add(stopped)
            if self._closed:
                stopped.set()
        try:
            while not stopped.is_set():
                events, cursor, more = self._read(query, cursor)
                yield from events
                if not more:
                    stopped.wait(self._poll)
        finally:
            with self._state:
                self._following.discard(stopped)
        if self._closed:  # tell the client why its stream ends, so it reconnects elsewhere
            raise ServerStoppingError("the audit service is stopping; retry")

    def close(self) -> None:
        """Stop every follower and wait for reads in flight; no read starts afterwards."""
        with self._state:
            self._closed = True
            for stopped in self._following:
                stopped.set()
            self._state.wait_for(lambda: self._reads == 0, _CLOSE_SECONDS)

    @contextlib.contextmanager
    def _session(self) -> Iterator[Session]:
        """A read transaction, counted so that close() can wait for it to end."""
        with self._state:
            if self._closed:
                raise ServerStoppingError("the audit service is stopping; retry")
            self._reads += 1
        try:
            with self._db.read() as session:
                yield session
        finally:
            with self._state:
                self._reads -= 1
                self._state.notify_all()

    def _read(self, query: TailQuery, cursor: int) -> tuple[list[AuditEvent], int, bool]:
        """The next matching events after cursor, the new cursor, and whether more are waiting."""
        with self._session() as session:
            # Bounded by the last sequence seen before the scan, so the cursor
            # can move past non-matching events without ever passing a match.
            upto = queries.last_sequence(session)
            events = queries.events_after(
                session,
                after=cursor,
                upto=upto,
                action=query.action,
                organization_id=query.organization_id,
                limit=_BATCH,
            )
        if len(events) == _BATCH:
            return events, events[-1].sequence, True
        return events, max(cursor, upto), False
