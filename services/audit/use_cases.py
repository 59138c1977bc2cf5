"""The rules of the audit log: append each event once, in a chain; read within scope."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, insert, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session

from services.audit import queries
from services.audit.chain import GENESIS, ChainedEvent, Head, Verification, link_hash, verify
from services.audit.chain import canonical_encoding as encode
from services.audit.models import AuditEvent, AuditEventOrganization
from services.audit.schemas import EventFilter, NewAuditEvent
from services.shared.db import table_of
from services.shared.errors import FieldViolation, PermissionDeniedError
from services.shared.identity import Caller, Role
from services.shared.paging import PageTokens

__all__ = [
    "INGEST_LOCK_KEY",
    "EventPage",
    "Ingested",
    "authorize_ingest",
    "authorize_tail",
    "check_sources",
    "ingest_events",
    "list_audit_events",
    "verify_chain",
]

# The pg_advisory_xact_lock key that serializes ingest across replicas: the
# first 8 bytes of SHA-256("loansuite.audit.ingest") as a signed integer, so no
# other lock in the database is likely to share it.
INGEST_LOCK_KEY: Final = -346224079990654176


@dataclass(frozen=True)
class EventPage:
    events: list[AuditEvent]
    next_page_token: str  # "" on the last page


@dataclass(frozen=True)
class Ingested:
    """Every event id of the batch (duplicates included), and the head if it grew the log."""

    event_ids: list[str]
    head: Head | None


# The services whose outbox relays deliver events; each writes only events of its own source.
PRODUCERS: Final = frozenset({"auth", "loans"})


def authorize_ingest(caller: Caller, *, certified_as: str | None = None) -> None:
    """Only the producing services write the audit log; with mTLS, by their certificates too.

    certified_as is the service named by the caller's verified certificate ("" for
    none), or None when the server does not demand certificates. A token alone can
    be minted by whoever reads auth's signing key; the certificate's key lives with
    the service.
    """
    if not caller.is_service:
        raise PermissionDeniedError(
            "only services may ingest audit events", reason="SERVICE_IDENTITY_REQUIRED"
        )
    if caller.service_name not in PRODUCERS:
        raise PermissionDeniedError(
            "only the loans and auth services deliver audit events", reason="SERVICE_NOT_PRODUCER"
        )
    if certified_as is not None and certified_as != caller.service_name:
        raise PermissionDeniedError(
            f"a {caller.service_name} token must come with the {caller.service_name} "
            "service's certificate",
            reason="SERVICE_CERTIFICATE_REQUIRED",
        )


def check_sources(caller: Caller, events: Sequence[NewAuditEvent]) -> None:
    """A service delivers only its own events: each event's source is the caller's service."""
    wrong = [
        FieldViolation(f"events[{index}].source", f"must be {caller.service_name!r}, the caller")
        for index, event in enumerate(events)
        if event.source != caller.service_name
    ]
    if wrong:
        raise PermissionDeniedError(
            "a service may deliver only events of its own source",
            reason="EVENT_SOURCE_NOT_CALLER",
            field_violations=tuple(wrong),
        )


def authorize_tail(caller: Caller) -> None:
    """Tailing the whole log, across organizations, is for platform admins."""
    if caller.role is not Role.ADMIN:
        raise PermissionDeniedError("only admins may tail the audit log", reason="ADMIN_REQUIRED")


def ingest_events(session: Session, events: Sequence[NewAuditEvent], *, now: datetime) -> Ingested:
    """Append the batch's not yet stored events to the chain; return every id and the new head."""
    _serialize_ingest(session)
    fresh = _unstored(session, events)
    ids = [event.event_id for event in events]
    if not fresh:
        return Ingested(ids, None)
    head = queries.log_head(session)
    rows = _chained_rows(fresh, head, now)
    session.execute(insert(_EVENTS), rows)
    links = [
        {"sequence": row["sequence"], "organization_id": organization_id}
        for row, event in zip(rows, fresh, strict=True)
        for organization_id in event.organization_ids
    ]
    if links:
        session.execute(insert(_ORGANIZATIONS), links)
    return Ingested(ids, Head(rows[-1]["sequence"], rows[-1]["hash"]))


# An event's own fields that its row stores as they are (the lists go elsewhere).
_ROW_FIELDS: Final = tuple(
    name for name in NewAuditEvent.model_fields if name not in {"organization_ids", "changes"}
)
# Core tables: the ORM's bulk INSERT adds work of its own to every row.
_EVENTS = table_of(AuditEvent)
_ORGANIZATIONS = table_of(AuditEventOrganization)


def _serialize_ingest(session: Session) -> None:
    """Hold the log's write lock until commit, so sequences are gapless and in commit order.

    On SQLite the write transaction (BEGIN IMMEDIATE) already holds the only
    write lock. On PostgreSQL, concurrent transactions would each read the same
    last sequence; the advisory lock makes them take turns, across replicas too,
    and a rolled-back batch leaves no gap since nothing was drawn from a sequence.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": INGEST_LOCK_KEY})


def _unstored(session: Session, events: Sequence[NewAuditEvent]) -> list[NewAuditEvent]:
    """The first occurrence of each event id that the log does not hold yet, in batch order."""
    first: dict[str, NewAuditEvent] = {}
    for event in events:
        first.setdefault(event.event_id, event)
    if not first:
        return []
    stored = set(session.scalars(select(AuditEvent.event_id).where(AuditEvent.event_id.in_(first))))
    return [event for event_id, event in first.items() if event_id not in stored]


def _chained_rows(
    events: Sequence[NewAuditEvent], head: Head | None, now: datetime
) -> list[dict[str, Any]]:
    """The rows to insert: each numbered after the head and linked to the one before."""
    sequence, previous = (head.sequence, bytes.fromhex(head.hash)) if head else (0, GENESIS)
    rows: list[dict[str, Any]] = []
    for event in events:
        sequence += 1
        changes = [[c.field, c.old_value, c.new_value] for c in event.changes]
        fields = {
            **{name: getattr(event, name) for name in _ROW_FIELDS},
            "sequence": sequence,
            "ingest_time": now,
        }
        chained = ChainedEvent(**fields, organization_ids=event.organization_ids, changes=changes)
        previous = link_hash(previous, encode(chained))
        rows.append(
            {
                **fields,
                "changes": json.dumps(changes, separators=(",", ":")),
                "hash": previous.hex(),
            }
        )
    return rows


def verify_chain(session: Session, *, expected_head: Head | None) -> Verification:
    """Recompute the chain over the whole log, oldest first, and check it reaches the head."""
    return verify(queries.chained_events(session), expected_head=expected_head)


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
