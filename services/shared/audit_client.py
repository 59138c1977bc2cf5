"""The audit service as an EventSink: batches over an IngestEvents stream kept open.

With a call per batch, the relay's exchange took about 70 % longer than audit's
handling of the batch: grpcio's synchronous stream call starts a thread to send
the requests, and a channel with no call in progress starts its polling thread
again, each waiting its turn for the GIL in a busy process (docs/BENCHMARKS.md,
"The relay's batches over one stream"). So batch after batch goes over one
stream, each answered in turn (audit acks a batch after its commit). A stream is
replaced once it is ``stream_seconds`` old, so that every batch still has
``timeout`` seconds to be answered under the call's deadline, a renewed access
token is used within that time, and a balancer can move the relay to another
audit replica; the relay ends it once it has nothing to deliver (``rest``).
Any failure abandons the stream; the relay sends the batch again on a new one,
and audit drops the events it already holds.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Sequence
from datetime import datetime

import grpc
from loansuite.audit.v1 import audit_service_pb2 as pb
from loansuite.audit.v1 import audit_service_pb2_grpc as pb_grpc

from services.shared import tracing
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
        stream_seconds: float = 5.0,
    ) -> None:
        self._stub = stub
        self._credentials = credentials
        self._timeout = timeout
        self._stream_seconds = stream_seconds
        self._stream: _BatchStream | None = None

    def send(self, records: Sequence[AuditRecord]) -> set[str]:
        request = pb.IngestEventsRequest(events=[to_proto(r) for r in records])
        stream = self._open()
        try:
            response = stream.exchange(request)
        except BaseException:
            self._abandon()
            raise
        if response.HasField("error"):  # audit ends the stream after a refusal
            self._abandon()
            raise RuntimeError(f"audit refused the batch: {response.error.reason}")
        return set(response.ack.event_ids)

    def rest(self) -> None:
        """Nothing to deliver for now: end the stream, so that it holds nothing open."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.end()

    def _open(self) -> _BatchStream:
        if self._stream is not None and self._stream.age() > self._stream_seconds:
            self.rest()
        if self._stream is None:
            metadata = outgoing_metadata(bearer=self._credentials.token())
            # The call lasts longer than any one batch: it starts a trace of its own,
            # and each batch's delivery and ingest spans link to the calls of its events.
            with tracing.detached():
                self._stream = _BatchStream(
                    self._stub, metadata, self._stream_seconds + self._timeout
                )
        return self._stream

    def _abandon(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.cancel()


class _BatchStream:
    """One IngestEvents call carrying batch after batch, each answered before the next."""

    def __init__(
        self, stub: pb_grpc.AuditServiceStub, metadata: tuple[tuple[str, str], ...], deadline: float
    ) -> None:
        self._opened = time.monotonic()
        self._requests: queue.SimpleQueue[pb.IngestEventsRequest | None] = queue.SimpleQueue()
        # The requests are what is put in the queue, until None ends them.
        self._call = stub.IngestEvents(
            iter(self._requests.get, None), timeout=deadline, metadata=metadata
        )
        self._responses = iter(self._call)

    def age(self) -> float:
        return time.monotonic() - self._opened

    def exchange(self, request: pb.IngestEventsRequest) -> pb.IngestEventsResponse:
        self._requests.put(request)
        try:
            return next(self._responses)
        except StopIteration:
            raise RuntimeError("audit ended the stream before answering the batch") from None

    def end(self) -> None:
        """Close the requests and wait for audit to end the call; it owes no answer."""
        self._requests.put(None)
        self._call.code()  # returns once the call is over, however it ended

    def cancel(self) -> None:
        self._requests.put(None)  # frees grpc's thread waiting for the next request
        self._call.cancel()
