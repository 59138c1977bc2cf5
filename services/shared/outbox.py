"""The transactional outbox: audit events written with the change, relayed after commit.

A use case calls ``record_event(session, ...)`` inside its transaction, so the
event commits or rolls back with the change it describes. ``OutboxRelay``
streams pending rows to the audit service and marks them delivered only when
the audit service has acknowledged them, which it does after its own commit.
A crash between ack and mark means redelivery, which the audit service drops
by event_id: the effect is exactly once. ``RelayLock`` keeps a SQLite outbox to
one relay, since SQLite cannot lock the rows a relay claims.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import FromClause, Index, Integer, String, TableClause, Text, insert
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from services.shared._types import Change
from services.shared.columns import UTCDateTime
from services.shared.context import current_request_id
from services.shared.db import Database, table_of
from services.shared.driver_statement import DriverStatement
from services.shared.identity import Caller
from services.shared.tracing import Origin, current_origin

__all__ = ["AuditRecord", "Change", "OutboxMixin", "RelayLock", "record_event"]


@dataclass(frozen=True)
class AuditRecord:
    """What an audit event says, independent of the wire format."""

    event_id: str
    action: str
    resource_type: str
    resource_id: str
    actor_user_id: str
    actor_organization_id: str
    actor_role: str
    organization_ids: list[str]
    request_id: str
    occur_time: str  # ISO 8601, UTC
    source: str
    changes: list[Change] = field(default_factory=list)
    # The call that caused the event (tracing.Origin); rows written before tracing lack them.
    trace_id: str = ""
    span_id: str = ""

    def origin(self) -> Origin:
        return Origin(self.trace_id, self.span_id)

    def to_json(self) -> str:
        # vars(), not dataclasses.asdict(): asdict deep-copies every value, which showed
        # up as a fifth of CreateLoan's CPU time.
        return json.dumps(vars(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AuditRecord:
        data: dict[str, Any] = json.loads(text)
        data["changes"] = [Change(*c) for c in data["changes"]]
        return cls(**data)


class OutboxMixin:
    """Columns of a service's outbox table; each service declares its own mapped class."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    payload: Mapped[str] = mapped_column(Text)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_time: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    if TYPE_CHECKING:
        # What declarative gives the mapped subclass, typed as DeclarativeBase types it.
        __tablename__: str
        __table__: ClassVar[FromClause]

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (Index(f"ix_{cls.__tablename__}_pending", "delivered_time", "id"),)


def record_event(
    session: Session,
    model: type[OutboxMixin],  # the service's mapped class
    *,
    source: str,
    action: str,
    resource_type: str,
    resource_id: str,
    actor: Caller | None,
    organization_ids: list[str],
    changes: Iterable[tuple[str, str, str]] | None = None,
    now: datetime | None = None,
) -> AuditRecord:
    """Add an audit event to the outbox in the session's transaction."""
    now = now or datetime.now(UTC)
    origin = current_origin()
    record = AuditRecord(
        event_id=str(uuid.uuid4()),
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        actor_user_id=actor.user_id if actor else "",
        actor_organization_id=actor.organization_id if actor else "",
        actor_role=actor.role.value if actor else "",
        organization_ids=sorted({o for o in organization_ids if o}),
        request_id=current_request_id(),
        occur_time=now.isoformat(),
        source=source,
        changes=[Change(*change) for change in changes or ()],
        trace_id=origin.trace_id,
        span_id=origin.span_id,
    )
    _insert(table_of(model)).send(
        session.connection(),
        {"event_id": record.event_id, "payload": record.to_json(), "create_time": now},
    )
    session.info["outbox_written"] = True
    return record


@functools.cache
def _insert(table: TableClause) -> DriverStatement:
    """The outbox INSERT, built once and run on the driver's cursor."""
    return DriverStatement(insert(table), columns=("event_id", "payload", "create_time"))


class RelayLock:
    """An exclusive, non-blocking flock on ``<database>.<table>.relay.lock``: its holder delivers.

    One lock per outbox table, not per file: auth and loans may share a SQLite file,
    and each needs a relay of its own.

    A kernel lock rather than a row or a marker file: the kernel drops it when the holder
    exits, even by SIGKILL, so a standby relay takes over with nothing stale to clean up.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None

    @classmethod
    def beside(cls, db: Database, table: str) -> RelayLock:
        """The lock of a SQLite file's outbox table; none for PostgreSQL or in-memory."""
        name = db.url.database
        if not db.is_sqlite or not name or name == ":memory:":
            return cls(None)
        return cls(Path(f"{name}.{table}.relay.lock"))

    def acquire(self) -> bool:
        """Take the lock if free; True when this relay holds it (or needs none)."""
        if self.path is None or self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for an operator: who delivers
        self._fd = fd
        return True

    def holder(self) -> str:
        """The process id written by the holder, as far as it can be read."""
        if self.path is None:
            return ""
        with contextlib.suppress(OSError):
            return self.path.read_text().strip()
        return ""

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None
