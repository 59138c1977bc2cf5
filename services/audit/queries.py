"""Reads of the audit log in sequence order: the chain in chunks, the head, new events."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from services.audit.chain import ChainedEvent, Head
from services.audit.models import AuditEvent, AuditEventOrganization, ChainCheckpoint

__all__ = [
    "CHUNK_SIZE",
    "advance_checkpoint",
    "chained_events",
    "checkpoint",
    "event_hash",
    "events_after",
    "last_sequence",
    "log_head",
]

# Rows per query while walking the chain: memory stays flat however long the log.
CHUNK_SIZE: Final = 2000

_COLUMNS: Final = (
    AuditEvent.sequence,
    AuditEvent.event_id,
    AuditEvent.action,
    AuditEvent.resource_type,
    AuditEvent.resource_id,
    AuditEvent.actor_user_id,
    AuditEvent.actor_organization_id,
    AuditEvent.actor_role,
    AuditEvent.request_id,
    AuditEvent.source,
    AuditEvent.occur_time,
    AuditEvent.ingest_time,
    AuditEvent.changes,
    AuditEvent.hash,
    AuditEvent.trace_id,
    AuditEvent.span_id,
)


def log_head(session: Session) -> Head | None:
    """The last event of the log as (sequence, hash); None for an empty log."""
    row = session.execute(
        select(AuditEvent.sequence, AuditEvent.hash).order_by(AuditEvent.sequence.desc()).limit(1)
    ).first()
    return None if row is None else Head(row.sequence, row.hash)


def last_sequence(session: Session) -> int:
    """The sequence of the last event; 0 for an empty log."""
    return int(session.scalar(select(func.coalesce(func.max(AuditEvent.sequence), 0))) or 0)


def event_hash(session: Session, sequence: int) -> str | None:
    """The stored hash of the event at sequence; None when there is no such event."""
    return session.scalar(select(AuditEvent.hash).where(AuditEvent.sequence == sequence))


def checkpoint(session: Session) -> Head | None:
    """Where the last VerifyChain left off; None before any event was verified."""
    row = session.get(ChainCheckpoint, 1)
    return None if row is None or row.sequence == 0 else Head(row.sequence, row.hash)


def advance_checkpoint(session: Session, head: Head, *, now: datetime) -> None:
    """Move the checkpoint to head, unless a concurrent call already took it further."""
    session.execute(
        update(ChainCheckpoint)
        .where(ChainCheckpoint.id == 1, ChainCheckpoint.sequence < head.sequence)
        .values(sequence=head.sequence, hash=head.hash, verify_time=now)
    )


def chained_events(
    session: Session, *, after: int = 0, chunk_size: int = CHUNK_SIZE
) -> Iterator[ChainedEvent]:
    """The events after a sequence (all by default) in sequence order, a chunk at a time."""
    while True:
        statement = select(*_COLUMNS).where(AuditEvent.sequence > after)
        rows = session.execute(statement.order_by(AuditEvent.sequence).limit(chunk_size)).all()
        if not rows:
            return
        organizations = _organizations(session, rows[0].sequence, rows[-1].sequence)
        for row in rows:
            yield _chained(row._asdict(), organizations.get(row.sequence, ()))
        after = rows[-1].sequence


def _organizations(session: Session, first: int, last: int) -> dict[int, list[str]]:
    links = session.execute(
        select(AuditEventOrganization.sequence, AuditEventOrganization.organization_id).where(
            AuditEventOrganization.sequence.between(first, last)
        )
    )
    grouped: dict[int, list[str]] = defaultdict(list)
    for sequence, organization_id in links:
        grouped[sequence].append(organization_id)
    return grouped


def _chained(fields: dict[str, Any], organization_ids: Sequence[str]) -> ChainedEvent:
    return ChainedEvent(
        **{**fields, "changes": _changes(fields["changes"])},
        organization_ids=organization_ids,
    )


def _changes(stored: str) -> list[list[str]]:
    try:
        changes = json.loads(stored)
    except ValueError:
        changes = None
    if isinstance(changes, list) and all(isinstance(c, list) for c in changes):
        return changes
    # Unreadable text still has to fail verification, never crash it: ingest
    # always writes triples, so a one-element change can never match a link.
    return [[stored]]


def events_after(
    session: Session, *, after: int, upto: int, action: str, organization_id: str, limit: int
) -> list[AuditEvent]:
    """Events with after < sequence <= upto that match the filter, oldest first."""
    statement: Select[tuple[AuditEvent]] = select(AuditEvent)
    if organization_id:
        statement = statement.join(
            AuditEventOrganization, AuditEventOrganization.sequence == AuditEvent.sequence
        ).where(AuditEventOrganization.organization_id == organization_id)
    if action:
        statement = statement.where(AuditEvent.action == action)
    statement = statement.where(AuditEvent.sequence > after, AuditEvent.sequence <= upto)
    return list(session.scalars(statement.order_by(AuditEvent.sequence).limit(limit)))
