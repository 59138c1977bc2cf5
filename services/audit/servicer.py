"""AuditService over gRPC: proto in, proto out, one transaction per batch or call."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import grpc
from loansuite.audit.v1 import audit_service_pb2 as pb
from loansuite.audit.v1 import audit_service_pb2_grpc as pb_grpc

from services.audit import conversions, use_cases
from services.audit.schemas import NewAuditEvent, parse_events
from services.audit.streaming import bidi_stream
from services.shared.db import Database
from services.shared.envelope import unary
from services.shared.identity import Authenticator
from services.shared.paging import PageTokens, page_size

__all__ = ["AuditServicer"]

log = logging.getLogger("loansuite.audit")

# A conflict means a concurrent stream committed some of the batch's events (or
# deadlocked with it); the retry sees them and skips them, so a second conflict
# needs yet another stream.
_INGEST_ATTEMPTS = 3


class AuditServicer(pb_grpc.AuditServiceServicer):
    """Ingest from service outboxes, and listing for users within their scope."""

    def __init__(self, db: Database, authenticator: Authenticator, page_tokens: PageTokens) -> None:
        self._db = db
        self._auth = authenticator
        self._pages = page_tokens

    @bidi_stream(pb.IngestEventsResponse)
    def IngestEvents(
        self, request_iterator: Iterator[pb.IngestEventsRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.IngestEventsResponse]:
        """Store each batch in one transaction and ack all its event ids after the commit."""
        use_cases.authorize_ingest(self._auth.authenticate(context.invocation_metadata()))
        for request in request_iterator:
            events = parse_events(conversions.records_from_proto(request.events))
            acked = self._store(events)
            yield pb.IngestEventsResponse(ack=pb.IngestAck(event_ids=acked))

    def _store(self, events: Sequence[NewAuditEvent]) -> list[str]:
        """One write transaction per attempt; returns once the batch is committed."""
        attempt = 1
        while True:
            try:
                with self._db.write() as session:
                    return use_cases.ingest_events(session, events, now=datetime.now(UTC))
            except use_cases.IngestConflictError:
                if attempt == _INGEST_ATTEMPTS:
                    raise
                log.info("ingest conflict; retrying the batch", extra={"attempt": attempt})
                attempt += 1

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
