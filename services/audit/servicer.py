"""AuditService over gRPC: proto in, proto out, one transaction per batch or call."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
from loansuite.audit.v1 import audit_service_pb2 as pb
from loansuite.audit.v1 import audit_service_pb2_grpc as pb_grpc

from services.audit import conversions, use_cases, verification
from services.audit.chain import Head
from services.audit.heads import HeadsFile
from services.audit.schemas import parse_events
from services.audit.tail import Tails
from services.audit.throttle import CallRate
from services.shared import tracing
from services.shared.db import Database
from services.shared.envelope import streaming, unary
from services.shared.errors import ServerStoppingError
from services.shared.identity import Authenticator
from services.shared.metrics import audit_ingested
from services.shared.paging import PageTokens, page_size
from services.shared.tls import peer_service

__all__ = ["AuditServicer"]

log = logging.getLogger("loansuite.audit")


class AuditServicer(pb_grpc.AuditServiceServicer):
    """Ingest from service outboxes, verification of the chain, and reads within scope."""

    def __init__(
        self,
        db: Database,
        authenticator: Authenticator,
        page_tokens: PageTokens,
        *,
        heads: HeadsFile,
        tails: Tails,
        certificates_required: bool = False,
        verify_rate: CallRate | None = None,
    ) -> None:
        self._db = db
        self._auth = authenticator
        self._pages = page_tokens
        self._heads = heads
        self._tails = tails
        # With mTLS, a producer is known by its certificate as well as by its token.
        self._certificates_required = certificates_required
        # VerifyChain costs work in proportion to the log's growth: paced per caller.
        self._verify_rate = verify_rate or CallRate(burst=5, interval=10.0, what="VerifyChain")
        self._stopping = threading.Event()

    def stop_ingesting(self) -> None:
        """The server stops: an open IngestEvents stream takes no further batch.

        A relay keeps its stream open across batches; one that went on sending here
        through the grace would be cut off mid-batch when it ran out. Refused with
        UNAVAILABLE, it sends the batch again to a replica that serves.
        """
        self._stopping.set()

    @streaming(pb.IngestEventsResponse)
    def IngestEvents(
        self, request_iterator: Iterator[pb.IngestEventsRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.IngestEventsResponse]:
        """Store each batch in one transaction, publish the new head, then ack all its ids."""
        caller = self._auth.authenticate(context.invocation_metadata())
        certified_as = peer_service(context) if self._certificates_required else None
        use_cases.authorize_ingest(caller, certified_as=certified_as)
        for request in request_iterator:
            if self._stopping.is_set():
                raise ServerStoppingError("the audit service is stopping; retry")
            events = parse_events(conversions.records_from_proto(request.events))
            use_cases.check_sources(caller, events)
            with (
                tracing.linked_span(
                    "audit ingest",
                    (tracing.Origin(e.trace_id, e.span_id) for e in events),
                    kind=tracing.SpanKind.CONSUMER,
                ),
                self._db.write() as session,
            ):
                ingested = use_cases.ingest_events(session, events, now=datetime.now(UTC))
            if ingested.head is not None:
                self._publish(ingested.head)
                committed = datetime.now(UTC)
                audit_ingested((e.occur_time for e in events), committed, ingested.head.sequence)
            yield pb.IngestEventsResponse(ack=pb.IngestAck(event_ids=ingested.event_ids))

    def _publish(self, head: Head) -> None:
        try:
            self._heads.publish(head)
        except OSError:
            # The batch is committed and must be acked, or its relay would resend
            # it forever; the next published head attests this batch as well.
            log.exception("could not publish the audit head", extra={"path": str(self._heads.path)})

    @unary(pb.ListAuditEventsResponse)
    def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: grpc.ServicerContext
    ) -> pb.ListAuditEventsResponse:
        """Page through the events the caller may read, oldest first."""
        caller = self._auth.authenticate(context.invocation_metadata())
        query = conversions.filter_from_proto(request.filter)
        size = page_size(request.page_size, default=50, maximum=500)
        with self._db.read() as session:
            page = use_cases.list_audit_events(
                session,
                caller=caller,
                query=query,
                page_size=size,
                page_token=request.page_token,
                tokens=self._pages,
            )
        events = [conversions.event_to_proto(event) for event in page.events]
        return pb.ListAuditEventsResponse(
            page=pb.AuditEventPage(events=events, next_page_token=page.next_page_token)
        )

    @unary(pb.VerifyChainResponse)
    def VerifyChain(
        self, request: pb.VerifyChainRequest, context: grpc.ServicerContext
    ) -> pb.VerifyChainResponse:
        """Verify the chain from the last checkpoint on against the given or last published head."""
        caller = self._auth.authenticate(context.invocation_metadata())
        expected = conversions.expected_head_from_proto(request) or self._heads.last()
        self._verify_rate.admit(caller.user_id)
        # The walk reads in its own snapshot; only moving the checkpoint takes the write lock.
        with self._db.read() as session:
            result = verification.verify_new_events(session, expected_head=expected)
        if result.intact:
            with self._db.write() as session:
                verification.record_checkpoint(session, result, now=datetime.now(UTC))
        return pb.VerifyChainResponse(verification=conversions.verification_to_proto(result))

    @streaming(pb.TailAuditEventsResponse)
    def TailAuditEvents(
        self, request: pb.TailAuditEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.TailAuditEventsResponse]:
        """Stream matching events as they commit, in log order, until the call ends."""
        caller = self._auth.authenticate(context.invocation_metadata())
        use_cases.authorize_tail(caller)
        query = conversions.tail_query_from_proto(request)
        stopped = threading.Event()
        # Called on cancellation, deadline and shutdown, which wakes the poll at once.
        context.add_callback(stopped.set)
        with self._tails.slot(caller.user_id, caller.organization_id):
            cursor = self._tails.start(query)
            # Headers now tell the client the tail is live: whatever commits after
            # they arrive will be delivered.
            context.send_initial_metadata(())
            for event in self._tails.follow(query, cursor, stopped):
                yield pb.TailAuditEventsResponse(event=conversions.event_to_proto(event))
