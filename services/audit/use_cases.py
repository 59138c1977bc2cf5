"""The rules of the audit log: store each event once, list within the caller's scope."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from services.audit.models import AuditEvent, AuditEventOrganization
from services.audit.schemas import EventFilter, NewAuditEvent
from services.shared.errors import AbortedError, PermissionDeniedError
from services.shared.identity import Caller, Role
from services.shared.paging import PageTokens

__all__ = [
    "EventPage",
    "IngestConflictError",
    "authorize_ingest",
    "ingest_events",
    "list_audit_events",
]


# PostgreSQL's deadlock_detected and serialization_failure: two streams whose
# batches share ids in different orders can each wait for the other.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


class IngestConflictError(AbortedError):
    """A concurrent stream stored (or holds) some of the batch's event ids; retry the batch."""

    reason = "INGEST_CONFLICT"
    message = "another stream stored some of these events concurrently; retry"


@dataclass(frozen=True)
class EventPage:
    events: list[AuditEvent]
    next_page_token: str  # "" on the last page


def authorize_ingest(caller: Caller) -> None:
    """Only services write the audit log: their outbox relays deliver the events."""
    if not caller.is_service:
        raise PermissionDeniedError(
            "only services may ingest audit events", reason="SERVICE_IDENTITY_REQUIRED"
        )


def ingest_events(session: Session, events: Sequence[NewAuditEvent], *, now: datetime) -> list[str]:
    """Append the batch's not yet stored events to the log; return every event id of the batch."""
    fresh = _unstored(session, events)
    if fresh:
        try:
            sequences = session.scalars(
                insert(AuditEvent).returning(AuditEvent.sequence, sort_by_parameter_order=True),
                [_row(event, now) for event in fresh],
            ).all()
            links = [
                {"sequence": sequence, "organization_id": organization_id}
                for sequence, event in zip(sequences, fresh, strict=True)
                for organization_id in event.organization_ids
            ]
            if links:
                session.execute(insert(AuditEventOrganization), links)
        except DBAPIError as exc:
            if not _is_conflict(exc):
                raise
            raise IngestConflictError() from exc
    return [event.event_id for event in events]


def _is_conflict(exc: DBAPIError) -> bool:
    """A concurrent stream stored one of our ids first, or crossed our order: a retry heals it."""
    if isinstance(exc, IntegrityError):  # only the unique event_id can clash
        return True
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _unstored(session: Session, events: Sequence[NewAuditEvent]) -> list[NewAuditEvent]:
    """The first occurrence of each event id that the log does not hold yet, in batch order."""
    first: dict[str, NewAuditEvent] = {}
    for event in events:
        first.setdefault(event.event_id, event)
    if not first:
        return []
    stored = set(session.scalars(select(AuditEvent.event_id).where(AuditEvent.event_id.in_(first))))
    return [event for event_id, event in first.items() if event_id not in stored]


def _row(event: NewAuditEvent, now: datetime) -> dict[str, Any]:
    return {
        **event.model_dump(exclude={"organization_ids", "changes"}),
        "ingest_time": now,
        "changes": json.dumps(
            [[c.field, c.old_value, c.new_value] for c in event.changes], separators=(",", ":")
        ),
    }


def list_audit_events(
    session: Session,
    *,
    caller: Caller,
    query: EventFilter,
    page_size: int,
    page_token: str,
    tokens: PageTokens,
) -> EventPage:
    """A page of the events the caller may read, oldest first, and the next page's token."""
    organization_id = _scope(caller, query)
    after = _position(tokens, page_token, query)
    statement = _statement(query, organization_id, after).limit(page_size + 1)
    events = list(session.scalars(statement))
    if len(events) <= page_size:
        return EventPage(events, "")
    last = events[page_size - 1]
    token = tokens.encode({"after": last.sequence, "filter": query.fingerprint()})
    return EventPage(events[:page_size], token)


def _scope(caller: Caller, query: EventFilter) -> str | None:
    """The organization whose events the caller may list; None means every event."""
    if caller.is_service:
        raise PermissionDeniedError(
            "audit events are listed by users, not services", reason="USER_IDENTITY_REQUIRED"
        )
    if caller.role is Role.ADMIN:
        return query.organization_id or None
    if query.organization_id and query.organization_id != caller.organization_id:
        raise PermissionDeniedError(
            "you may list the events of your own organization only",
            reason="ORGANIZATION_OUT_OF_SCOPE",
        )
    return caller.organization_id


def _position(tokens: PageTokens, page_token: str, query: EventFilter) -> int:
    """The sequence after which the page starts; a token only serves the filter that made it."""
    if not page_token:
        return 0
    cursor = tokens.decode(page_token)
    after = cursor.get("after")
    if cursor.get("filter") != query.fingerprint() or not isinstance(after, int):
        raise tokens.invalid()
    return after


def _statement(query: EventFilter, organization_id: str | None, after: int) -> Select[AuditEvent]:
    position: InstrumentedAttribute[int] = AuditEvent.sequence
    statement = select(AuditEvent)
    if organization_id is not None:
        # Ordered by the link's own sequence, the (organization_id, sequence)
        # index serves both the scope and the order: a range scan, no sort.
        position = AuditEventOrganization.sequence
        statement = statement.join(
            AuditEventOrganization, AuditEventOrganization.sequence == AuditEvent.sequence
        ).where(AuditEventOrganization.organization_id == organization_id)
    return statement.where(position > after, *_conditions(query)).order_by(position)


def _conditions(query: EventFilter) -> list[ColumnElement[bool]]:
    exact = (
        (AuditEvent.resource_type, query.resource_type),
        (AuditEvent.resource_id, query.resource_id),
        (AuditEvent.actor_user_id, query.actor_user_id),
        (AuditEvent.action, query.action),
    )
    conditions = [column == value for column, value in exact if value]
    if query.occur_time_from is not None:
        conditions.append(AuditEvent.occur_time >= query.occur_time_from)
    if query.occur_time_to is not None:
        conditions.append(AuditEvent.occur_time < query.occur_time_to)
    return conditions
