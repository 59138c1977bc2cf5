"""Relay test support: an outbox table of its own, sinks at the process boundary, polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from sqlalchemy.orm import DeclarativeBase, Session

from services.shared.audit_client import AuditSink, relay_channel
from services.shared.db import Database
from services.shared.outbox import OutboxMixin, record_event
from services.shared.relay import OutboxRelay
from services.shared.server import Registration, Server, create_server


class Base(DeclarativeBase):
    pass


class RelayOutbox(OutboxMixin, Base):
    """An outbox table owned by these tests, so no service's schema is involved."""

    __tablename__ = "relay_test_outbox"


def outbox_database(url: str) -> Database:
    db = Database(url)
    Base.metadata.create_all(db.engine)
    return db


def write_events(session: Session, count: int = 1) -> list[str]:
    """Add count events to the outbox in the session's transaction; returns their ids."""
    return [
        record_event(
            session,
            RelayOutbox,
            source="test",
            action="THING_CHANGED",
            resource_type="thing",
            resource_id=f"thing-{n}",
            actor=None,
            organization_ids=[],
        ).event_id
        for n in range(count)
    ]


def commit_events(db: Database, count: int = 1) -> list[str]:
    with db.write() as session:
        return write_events(session, count)


class RecordingSink:
    """Acks every event and remembers the batches, in order (the audit side of a relay)."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self._lock = threading.Lock()

    def send(self, records: Any) -> set[str]:
        ids = [record.event_id for record in records]
        with self._lock:
            self.batches.append(ids)
        return set(ids)

    @property
    def delivered(self) -> list[str]:
        with self._lock:
            return [event_id for batch in self.batches for event_id in batch]


class AuditSpy(audit_grpc.AuditServiceServicer):
    """A real gRPC IngestEvents endpoint that acks and remembers, standing in for audit."""

    def __init__(self) -> None:
        self.event_ids: list[str] = []

    def IngestEvents(
        self,
        request_iterator: Iterator[audit_pb.IngestEventsRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[audit_pb.IngestEventsResponse]:
        for request in request_iterator:
            ids = [event.event_id for event in request.events]
            self.event_ids.extend(ids)
            yield audit_pb.IngestEventsResponse(ack=audit_pb.IngestAck(event_ids=ids))


def serve_spy(spy: AuditSpy, port: int) -> Server:
    registration = Registration(
        name="loansuite.audit.v1.AuditService",
        add=lambda server: audit_grpc.add_AuditServiceServicer_to_server(spy, server),
    )
    return create_server([registration], f"127.0.0.1:{port}", max_workers=4)


class StaticToken:
    def token(self) -> str:
        return "test-token"


def grpc_relay(db: Database, port: int, **options: Any) -> tuple[OutboxRelay, grpc.Channel]:
    """A relay that delivers over a real channel to 127.0.0.1:port, as the wiring builds it."""
    channel = relay_channel(f"127.0.0.1:{port}")
    sink = AuditSink(audit_grpc.AuditServiceStub(channel), StaticToken(), timeout=5)
    return OutboxRelay(db, RelayOutbox, sink, source="test", **options), channel


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll until check() holds; fails only when it still does not after a generous timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout}s: {check}")
        time.sleep(0.02)
