"""Relay test support: an outbox table of its own, a sink at the process boundary, relays."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import grpc
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from sqlalchemy.orm import DeclarativeBase, Session

from services.shared.audit_client import AuditSink, relay_channel
from services.shared.db import Database
from services.shared.outbox import AuditRecord, OutboxMixin, record_event
from services.shared.relay import OutboxRelay


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

    def send(self, records: Sequence[AuditRecord]) -> set[str]:
        ids = [record.event_id for record in records]
        with self._lock:
            self.batches.append(ids)
        return set(ids)

    def rest(self) -> None:
        """It holds nothing open between batches."""

    @property
    def delivered(self) -> list[str]:
        with self._lock:
            return [event_id for batch in self.batches for event_id in batch]


class StaticToken:
    def token(self) -> str:
        return "test-token"


def grpc_relay(db: Database, port: int, **options: Any) -> tuple[OutboxRelay, grpc.Channel]:
    """A relay that delivers over a real channel to 127.0.0.1:port, as the wiring builds it."""
    channel = relay_channel(f"127.0.0.1:{port}")
    sink = AuditSink(audit_grpc.AuditServiceStub(channel), StaticToken(), timeout=5)
    return OutboxRelay(db, RelayOutbox, sink, source="test", **options), channel
