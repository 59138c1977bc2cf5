"""Between the wire (audit_service.proto) and the audit domain."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

from google.protobuf.timestamp_pb2 import Timestamp
from loansuite.audit.v1 import audit_service_pb2 as pb

from services.audit.chain import Head, Verification
from services.audit.models import AuditEvent
from services.audit.schemas import EventFilter, parse_filter, parse_head, parse_tail_filter
from services.audit.tail import TailQuery
from services.shared.outbox import AuditRecord, Change
from services.shared.timestamps import timestamp
from services.shared.validation import check_range

__all__ = [
    "event_to_proto",
    "expected_head_from_proto",
    "filter_from_proto",
    "record_from_proto",
    "records_from_proto",
    "tail_query_from_proto",
    "verification_to_proto",
]


def _iso(ts: Timestamp, *, present: bool) -> str:
    """ISO 8601 for the schemas to parse: "" when unset, a non-date when out of range."""
    if not present:
        return ""
    try:
        return ts.ToDatetime(tzinfo=UTC).isoformat()
    except ValueError:
        # Still says what was sent; the schema rejects it as OCCUR_TIME_INVALID.
        return f"@{ts.seconds}.{ts.nanos}"


def record_from_proto(event: pb.AuditEvent) -> AuditRecord:
    """An incoming event as the domain record; sequence and ingest_time are ours to set."""
    return AuditRecord(
        event_id=event.event_id,
        action=event.action,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        actor_user_id=event.actor.user_id,
        actor_organization_id=event.actor.organization_id,
        actor_role=event.actor.role,
        organization_ids=list(event.organization_ids),
        request_id=event.request_id,
        occur_time=_iso(event.occur_time, present=event.HasField("occur_time")),
        source=event.source,
        changes=[Change(c.field, c.old_value, c.new_value) for c in event.changes],
        trace_id=event.trace_id,
        span_id=event.span_id,
    )


def records_from_proto(events: Sequence[pb.AuditEvent]) -> list[AuditRecord]:
    return [record_from_proto(event) for event in events]


def filter_from_proto(query: pb.AuditEventFilter) -> EventFilter:
    """ListAuditEvents' filter, validated."""
    return parse_filter(
        resource_type=query.resource_type,
        resource_id=query.resource_id,
        actor_user_id=query.actor_user_id,
        action=query.action,
        occur_time_from=_iso(query.occur_time_from, present=query.HasField("occur_time_from")),
        occur_time_to=_iso(query.occur_time_to, present=query.HasField("occur_time_to")),
        organization_id=query.organization_id,
    )


def event_to_proto(event: AuditEvent) -> pb.AuditEvent:
    """A stored event with its position in the log and the time it was ingested."""
    return pb.AuditEvent(
        event_id=event.event_id,
        action=event.action,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        actor=pb.Actor(
            user_id=event.actor_user_id,
            organization_id=event.actor_organization_id,
            role=event.actor_role,
        ),
        organization_ids=event.organization_ids,
        request_id=event.request_id,
        occur_time=timestamp(event.occur_time),
        changes=[
            pb.FieldChange(field=f, old_value=old, new_value=new)
            for f, old, new in event.change_list
        ],
        source=event.source,
        sequence=event.sequence,
        ingest_time=timestamp(event.ingest_time),
        hash=event.hash,
        trace_id=event.trace_id,
        span_id=event.span_id,
    )


def expected_head_from_proto(request: pb.VerifyChainRequest) -> Head | None:
    """The head the caller asked to verify against, validated; None when unset."""
    if not request.HasField("expected_head"):
        return None
    return parse_head(request.expected_head.sequence, request.expected_head.hash)


def _head(head: Head | None) -> pb.ChainHead | None:
    return None if head is None else pb.ChainHead(sequence=head.sequence, hash=head.hash)


def verification_to_proto(result: Verification) -> pb.ChainVerification:
    return pb.ChainVerification(
        intact=result.intact,
        checked_events=result.checked_events,
        first_bad_sequence=result.first_bad_sequence,
        problem=result.problem,
        head=_head(result.head),
        expected_head=_head(result.expected_head),
    )


def tail_query_from_proto(request: pb.TailAuditEventsRequest) -> TailQuery:
    """TailAuditEvents' request, validated: a uint64 can hold more than a sequence column."""
    after = None
    if request.HasField("after_sequence"):
        after = check_range(request.after_sequence, "after_sequence")
    action, organization_id = parse_tail_filter(
        action=request.action, organization_id=request.organization_id
    )
    return TailQuery(action=action, organization_id=organization_id, after_sequence=after)
