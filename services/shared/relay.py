"""The outbox relay: pending outbox rows to the audit service, marked delivered on ack."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from services.shared.db import Database
from services.shared.outbox import AuditRecord, OutboxMixin

__all__ = ["EventSink", "OutboxRelay"]

log = logging.getLogger("loansuite.relay")


class EventSink(Protocol):
    """Where events go; returns the event ids that are durably stored there."""

    def send(self, records: Sequence[AuditRecord]) -> set[str]: ...


class OutboxRelay:
    """A background thread that drains one service's outbox into an EventSink."""

    def __init__(
        self,
        db: Database,
        model: Any,
        sink: EventSink,
        *,
        batch_size: int = 200,
        poll_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self._db = db
        self._model: type[OutboxMixin] = model
        self._sink = sink
        self._batch_size = batch_size
        self._poll = poll_seconds
        self._max_backoff = max_backoff_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        db.on_commit(self._on_commit)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def backlog(self) -> int:
        """How many events wait for delivery."""
        with self._db.read() as session:
            query = select(func.count()).where(self._model.delivered_time.is_(None))
            return int(session.scalar(query) or 0)

    def deliver_batch(self) -> int:
        """Deliver up to one batch; returns how many events were acknowledged."""
        if self._db.is_sqlite:
            # One relay per SQLite database, and the write lock is never held across the
            # network: read, send, then mark.
            with self._db.read() as session:
                records = self._pending(session, lock=False)
            acked = self._sink.send(records) if records else set()
            if acked:
                with self._db.write() as session:
                    self._mark(session, acked)
            return len(acked)
        # PostgreSQL: rows stay locked until marked, so other replicas skip them.
        with self._db.write() as session:
            records = self._pending(session, lock=True)
            acked = self._sink.send(records) if records else set()
            self._mark(session, acked)
            return len(acked)

    def _pending(self, session: Session, *, lock: bool) -> list[AuditRecord]:
        query = (
            select(self._model.payload)
            .where(self._model.delivered_time.is_(None))
            .order_by(self._model.id)
            .limit(self._batch_size)
        )
        if lock:
            query = query.with_for_update(skip_locked=True)
        return [AuditRecord.from_json(payload) for payload in session.scalars(query)]

    def _mark(self, session: Session, acked: set[str]) -> None:
        if acked:
            session.execute(
                update(self._model)
                .where(self._model.event_id.in_(acked))
                .values(delivered_time=datetime.now(UTC))
            )

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                delivered = self.deliver_batch()
                failures = 0
            except Exception as exc:
                failures += 1
                delay = min(self._max_backoff, 0.2 * 2 ** min(failures, 10)) * random.uniform(
                    0.5, 1
                )
                log.warning(
                    "audit delivery failed; retrying",
                    extra={"error": type(exc).__name__, "retry_in_seconds": round(delay, 2)},
                )
                self._stopping.wait(delay)
                continue
            if delivered < self._batch_size:  # caught up: sleep until woken or the next poll
                self._wake.wait(self._poll)
                self._wake.clear()

    def _on_commit(self, session: Session) -> None:
        if session.info.pop("outbox_written", False):
            self._wake.set()
