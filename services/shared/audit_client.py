"""The audit service as an EventSink: one IngestEvents exchange per outbox batch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import grpc
from loansuite.audit.v1 import audit_service_pb2 as pb
from loansuite.audit.v1 import audit_service_pb2_grpc as pb_grpc

from services.shared.context import outgoing_metadata
from services.shared.identity import TokenSource
from services.shared.outbox import AuditRecord
from services.shared.timestamps import timestamp
from services.shared.tls import TlsConfig, open_channel

__all__ = ["AuditSink", "relay_channel", "to_proto"]

# grpc's reconnect backoff grows to 120 s by default, so after a long audit outage the
# relay's retries would fail fast for up to two minutes after audit is back. Cap it near
# the relay's own backoff.
_CHANNEL_OPTIONS = (("grpc.max_reconnect_backoff_ms", 5_000),)


def relay_channel(target: str, tls: TlsConfig | None = None) -> grpc.Channel:
    """A channel to the audit service for a relay: reconnects within seconds of its return."""
    return open_channel(target, tls, options=_CHANNEL_OPTIONS)


def to_proto(record: AuditRecord) -> pb.AuditEvent:
    return pb.AuditEvent(
        event_id=record.event_id,
        action=record.action,
        resource_type=record.resource_type,
        resource_id=record.resource_id,
        actor=pb.Actor(
            user_id=record.actor_user_id,
            organization_id=record.actor_organization_id,
            role=record.actor_role,
        ),
        organization_ids=record.organization_ids,
        request_id=record.request_id,
        occur_time=timestamp(datetime.fromisoformat(record.occur_time)),
        changes=[
            pb.FieldChange(field=f, old_value=old, new_value=new) for f, old, new in record.changes
        ],
        source=record.source,
        trace_id=record.trace_id,
        span_id=record.span_id,
    )


class AuditSink:
    """Sends a batch and waits for the audit service's acks (given after its commit)."""

    def __init__(
        self,
        stub: pb_grpc.AuditServiceStub,
        credentials: TokenSource,
        *,
        timeout: float = 10.0,
    ) -> None:
        self._stub = stub
        self._credentials = credentials
        self._timeout = timeout

    def send(self, records: Sequence[AuditRecord]) -> set[str]:
        request = pb.IngestEventsRequest(events=[to_proto(r) for r in records])
        responses = self._stub.IngestEvents(
            iter([request]),
            timeout=self._timeout,
            metadata=outgoing_metadata(bearer=self._credentials.token()),
        )
        acked: set[str] = set()
        for response in responses:
            if response.HasField("error"):
                raise RuntimeError(f"audit refused the batch: {response.error.reason}")
            acked.update(response.ack.event_ids)
        return acked
