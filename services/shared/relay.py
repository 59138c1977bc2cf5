"""The outbox relay: pending outbox rows to the audit service, marked delivered on ack.

Each round claims the oldest undelivered rows (``delivered_time IS NULL ORDER BY
id``), never "ids above the last one seen": ids are taken at insert and commit
out of order, so a row that commits late would be skipped for ever. Delivery
is at least once (audit acks after its commit, the row is marked after the
ack) and audit drops duplicates by event_id.

Several relays may share a PostgreSQL database: rows are claimed ``FOR UPDATE
SKIP LOCKED`` in the transaction that marks them. SQLite has no row locks, so
one relay per SQLite file is enforced with an exclusive ``flock`` beside it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Select, Update, bindparam, func, select, update
from sqlalchemy.orm import Session

from services.shared import tracing
from services.shared.db import Database, table_of
from services.shared.metrics import OutboxSnapshot, OutboxStats, outboxes
from services.shared.outbox import AuditRecord, OutboxMixin, RelayLock
from services.shared.relay_watch import HEALTH_PREFIX, DeliveryWatch, HealthReport

__all__ = ["HEALTH_PREFIX", "EventSink", "HealthReport", "OutboxRelay"]

log = logging.getLogger("loansuite.relay")

# Events sent but not yet marked, remembered to count re-sends; bounded so that rows
# another replica delivered (and this relay will never mark) cannot grow it for ever.
_UNMARKED_CAP = 100_000


class EventSink(Protocol):
    """Where events go; returns the event ids that are durably stored there."""

    def send(self, records: Sequence[AuditRecord]) -> set[str]: ...

    def rest(self) -> None:
        """Nothing is left to send for now: release what sending holds open."""


class OutboxRelay:
    """A background thread that drains one service's outbox into an EventSink."""

    def __init__(
        self,
        db: Database,
        model: type[OutboxMixin],  # the service's mapped class
        sink: EventSink,
        *,
        source: str,
        batch_size: int = 200,
        poll_seconds: float = 1.0,
        # Before a round that a commit called for, events committed within this join its
        # batch: one exchange with audit, one audit transaction and one mark for many
        # events, at the cost of this much lag. Only a full batch (a backlog) goes at once.
        linger_seconds: float = 0.01,
        # A returning audit service is noticed within this; a retry costs one failed connect.
        max_backoff_seconds: float = 10.0,
        stall_seconds: float = 10.0,
        report_seconds: float = 5.0,
    ) -> None:
        self._db = db
        self._model = model
        self._sink = sink
        self._source = source
        self._batch_size = batch_size
        self._poll = poll_seconds
        self._linger = linger_seconds
        self._report_every = report_seconds
        self.stats = OutboxStats(source)
        self._watch = DeliveryWatch(self.stats, stall_seconds, max_backoff_seconds)
        self._lock = RelayLock.beside(db, table_of(model).name)
        self._active: bool | None = None
        self._unmarked: dict[str, None] = {}  # insertion-ordered set
        self._last_report = OutboxSnapshot(source)
        self._next_report = 0.0
        self._read_pending, self._claim_pending, self._mark_delivered = _statements(
            model, batch_size
        )
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        db.on_commit(self._on_commit)

    def start(self, *, health: HealthReport | None = None) -> None:
        """Claim the SQLite lock (or stand by), report health, and start delivering."""
        self._watch.attach(health)
        self._claim()
        outboxes.add(self.stats)
        self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            self._lock.release()
        outboxes.remove(self.stats)

    def backlog(self) -> int:
        """How many events wait for delivery."""
        return self._backlog()[0]

    def deliver_batch(self) -> int:
        """Deliver up to one batch; returns how many events were acknowledged."""
        if self._db.is_sqlite:
            # One relay per SQLite database, and the write lock is never held across the
            # network: read, send, then mark.
            with self._db.read() as session:
                records = self._pending(session, lock=False)
            acked = self._send(records)
            if acked:  # group-committed: the mark shares its commit with the writers'
                self._db.submit(lambda session: self._mark(session, acked))
        else:
            # PostgreSQL: rows stay locked until marked, so other replicas skip them.
            with self._db.write() as session:
                records = self._pending(session, lock=True)
                acked = self._send(records)
                self._mark(session, acked)
        self._settle(acked)
        return len(acked)

    def _pending(self, session: Session, *, lock: bool) -> list[AuditRecord]:
        query = self._claim_pending if lock else self._read_pending
        rows = session.connection().execute(query).scalars()
        return [AuditRecord.from_json(payload) for payload in rows]

    def _send(self, records: list[AuditRecord]) -> set[str]:
        if not records:
            return set()
        ids = [record.event_id for record in records]
        resent = sum(1 for event_id in ids if event_id in self._unmarked)
        if resent:
            self.stats.add_resent(resent)
        self._unmarked.update(dict.fromkeys(ids))
        while len(self._unmarked) > _UNMARKED_CAP:
            del self._unmarked[next(iter(self._unmarked))]
        # A trace of its own that links to each call whose events it carries.
        with tracing.linked_span(
            f"{self._source} outbox deliver",
            (record.origin() for record in records),
            kind=tracing.SpanKind.PRODUCER,
        ) as span:
            span.set_attribute("loansuite.events", len(records))
            return self._sink.send(records)

    def _mark(self, session: Session, acked: set[str]) -> None:
        if acked:
            params = {"acked": list(acked), "now": datetime.now(UTC)}
            session.connection().execute(self._mark_delivered, params)

    def _settle(self, acked: set[str]) -> None:
        """After the mark committed: these events are done."""
        for event_id in acked:
            self._unmarked.pop(event_id, None)
        if acked:
            self.stats.add_delivered(len(acked))

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._report_if_due()
                if self._claim():
                    self._round()
                else:
                    self._stopping.wait(self._poll)
        finally:
            self._rest()
            self._lock.release()

    def _round(self) -> None:
        self._wake.clear()  # a commit during this round wakes the next one at once
        try:
            delivered = self.deliver_batch()
        except Exception as exc:
            self._stopping.wait(self._watch.failed(exc))
            return
        self._watch.succeeded()
        if delivered == self._batch_size:
            return  # more waits: the next batch is full already
        # Not a full batch: wait for a commit (one may have come during this round) or the
        # next poll, then let the batch fill a moment. Under load that adds about the
        # moment to an event's lag and takes a fifth off audit's work per event.
        if self._wake.wait(self._poll):
            self._stopping.wait(self._linger)
        else:
            self._rest()

    def _rest(self) -> None:
        try:
            self._sink.rest()
        except Exception:  # a failed end of an idle exchange loses nothing
            log.debug("the sink's rest failed", exc_info=True)

    def _claim(self) -> bool:
        """Hold the SQLite relay lock, or stand by; logs and reports each change.

        A second relay stands by rather than stopping its process: that process still
        serves correctly (its events land in the shared file, which the holder drains),
        and it takes over within a poll once the holder exits, where refusing to start
        would turn a restart that overlaps the old process's exit into an outage.
        """
        held = self._lock.acquire()
        if held != self._active:
            if not held:
                log.warning(
                    "another relay delivers this SQLite database's outbox; standing by",
                    extra={"lock": str(self._lock.path), "holder_pid": self._lock.holder()},
                )
            elif self._active is False:
                log.warning("outbox relay took over", extra={"lock": str(self._lock.path)})
            self._active = held
            self._watch.set_state("delivering" if held else "standby")
        return held

    def _report_if_due(self) -> None:
        """Refresh the backlog gauges; log them while non-zero or when anything changed."""
        now = time.monotonic()
        if now < self._next_report:
            return
        self._next_report = now + self._report_every
        try:
            pending, oldest = self._backlog()
        except Exception:  # the database is away: the failed rounds already say so
            return
        self.stats.set_backlog(pending, oldest)
        snapshot = self.stats.snapshot()
        # With nothing pending the age is 0 too, so an idle relay compares equal and is quiet.
        if pending or snapshot != self._last_report:
            log.info("outbox relay report", extra=vars(snapshot))
            self._last_report = snapshot

    def _backlog(self) -> tuple[int, float]:
        """Pending events and the age in seconds of the oldest."""
        query = select(func.count(), func.min(self._model.create_time)).where(
            self._model.delivered_time.is_(None)
        )
        with self._db.read() as session:
            count, oldest = session.execute(query).one()
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        return int(count), round(max(age, 0.0), 3)

    def _on_commit(self, session: Session) -> None:
        if session.info.pop("outbox_written", False):
            self._wake.set()


def _statements(
    model: type[OutboxMixin], batch_size: int
) -> tuple[Select[Any], Select[Any], Update]:
    """Built once, as they run every round: read pending rows, claim them, mark them."""
    table = table_of(model)
    read = (
        select(table.c.payload)
        .where(table.c.delivered_time.is_(None))
        .order_by(table.c.id)
        .limit(batch_size)
    )
    mark = (
        update(table)
        .where(table.c.event_id.in_(bindparam("acked", expanding=True)))
        .values(delivered_time=bindparam("now"))
    )
    return read, read.with_for_update(skip_locked=True), mark
