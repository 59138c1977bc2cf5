"""Retention: delivered outbox rows and old idempotency records go; nothing else does.

Both tables grow with every mutation. A delivered outbox row has done its work
once audit acknowledged it (it stays a while, for an operator to look at); an
idempotency record only matters while a client may still retry. The sweep
deletes rows past their retention in small batches, one short transaction each,
resting between them, so that it never holds SQLite's write lock for long. An undelivered outbox row
is never deleted, however old: it is an audit event still on its way. The
DELETEs name rows by key, so several replicas sweeping one database at once
only find less to do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Delete, bindparam, delete, select, tuple_
from sqlalchemy.orm import Session

from services.shared.db import Database, table_of
from services.shared.idempotency import IdempotencyMixin
from services.shared.metrics import retention
from services.shared.outbox import OutboxMixin
from services.shared.periodic import PeriodicSweep
from services.shared.settings import Retention

__all__ = ["DEFAULT_BATCH", "Retention", "RetentionSweep"]

log = logging.getLogger("loansuite.retention")

# Rows per DELETE. A batch holds SQLite's write lock (and shares a group commit with
# the writers of that moment), so it is kept small, and the sweep rests as long as a
# batch took before the next: it never takes more than about half of the writing time.
DEFAULT_BATCH = 100


class RetentionSweep(PeriodicSweep):
    """Deletes what is past retention, now (``sweep``) or every ``interval`` seconds."""

    thread_name = "retention"

    def __init__(
        self,
        db: Database,
        retention_for: Retention,
        *,
        outbox: type[OutboxMixin] | None = None,
        idempotency: type[IdempotencyMixin] | None = None,
        batch: int = DEFAULT_BATCH,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        source: str,
    ) -> None:
        self._db = db
        self._retention = retention_for
        self._batch = batch
        self._clock = clock
        self._source = source
        self._statements: dict[str, tuple[Delete, float]] = {}
        if outbox is not None:
            self._statements["outbox"] = (
                _delivered_before(outbox, batch),
                retention_for.outbox_seconds,
            )
        if idempotency is not None:
            self._statements["idempotency"] = (
                _created_before(idempotency, batch),
                retention_for.idempotency_seconds,
            )
        super().__init__()

    def sweep(self) -> dict[str, int]:
        """Delete every row past retention, a batch per transaction; the counts by table."""
        now = self._clock()
        deleted: dict[str, int] = {}
        for name, (statement, seconds) in self._statements.items():
            delete_batch = _batch_of(statement, now - timedelta(seconds=seconds))
            total = 0
            while not self._stopping.is_set():
                started = time.monotonic()
                count = self._db.submit(delete_batch)
                total += count
                if count < self._batch:
                    break
                self._stopping.wait(time.monotonic() - started)
            deleted[name] = total
            if total:
                retention.add(self._source, name, total)
        if any(deleted.values()):
            log.info("retention sweep", extra={"deleted": deleted})
        return deleted


def _delivered_before(model: type[OutboxMixin], batch: int) -> Delete:
    table = table_of(model)
    # Any batch of old rows will do: no ORDER BY, so the index on delivered_time is
    # read until the LIMIT and nothing is sorted.
    oldest = (
        select(table.c.id)
        .where(table.c.delivered_time.is_not(None), table.c.delivered_time < bindparam("cutoff"))
        .limit(batch)
    )
    return delete(table).where(table.c.id.in_(oldest.scalar_subquery()))


def _created_before(model: type[IdempotencyMixin], batch: int) -> Delete:
    table = table_of(model)
    key = (table.c.scope, table.c.rpc, table.c.request_id)
    oldest = select(*key).where(table.c.create_time < bindparam("cutoff")).limit(batch)
    return delete(table).where(tuple_(*key).in_(oldest))


def _batch_of(statement: Delete, cutoff: datetime) -> Callable[[Session], int]:
    """One batch's DELETE as a group-committed write; it returns how many rows went."""

    def delete_batch(session: Session) -> int:
        result: Any = session.connection().execute(statement, {"cutoff": cutoff})
        return int(result.rowcount)

    return delete_batch
