"""Audit figures: the commit-to-audit lag of the CreateLoan phase, and ingest on its own.

The lag comes from the audit log itself (ingest_time - occur_time of each
LOAN_CREATED event of the phase). The ingest-only phase feeds the audit service
directly, as the loans relay does: a service token from auth, then batches of
events over one IngestEvents stream with a few batches in flight, so the
service never waits for the client; an event counts once its ack arrives,
which the service sends after its commit (hash chain included).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from loansuite.audit.v1 import audit_service_pb2 as pb
from loansuite.audit.v1 import audit_service_pb2_grpc as pb_grpc
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc
from sqlalchemy import create_engine, text

from services.bench.phases import percentile_ms
from services.bench.suite import Suite
from services.shared._types import Metadata
from services.shared.timestamps import timestamp

__all__ = ["BATCH_SIZE", "IN_FLIGHT", "audit_figures", "ingest_only"]

BATCH_SIZE = 200  # what the relays send in one request
IN_FLIGHT = 4  # requests sent ahead of their acks
_TIMEOUT = 10.0
_CHANGES = [
    pb.FieldChange(field=name, old_value="", new_value=value)
    for name, value in (
        ("name", '"Bench loan"'),
        ("currency_code", '"EUR"'),
        ("principal_amount", '"1250000.00"'),
        ("state", '"LOAN_STATE_DRAFT"'),
    )
]


def audit_figures(
    audit_url: str, since: float, created: int, timeout: float = 60.0
) -> dict[str, Any]:
    """Wait for the phase's LOAN_CREATED events to reach audit; lag = ingest - occur time."""
    engine = create_engine(audit_url)
    query = text("SELECT occur_time, ingest_time FROM audit_events WHERE action = 'LOAN_CREATED'")
    deadline = time.monotonic() + timeout
    phase: list[tuple[float, float]] = []
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            rows = list(conn.execute(query))
        phase = [(_seconds(o), _seconds(i)) for o, i in rows if _seconds(o) >= since]
        if len(phase) >= created:
            break
        time.sleep(0.2)
    engine.dispose()
    lags = sorted(ingest - occur for occur, ingest in phase)
    ingested = [ingest for _, ingest in phase]
    spread = max(ingested) - min(ingested) if ingested else 0.0
    return {
        "audit_events": len(phase),
        "audit_missing": created - len(phase),
        "audit_ingest_eps": round(len(phase) / spread, 1) if spread else None,
        "audit_lag_p50_ms": percentile_ms(lags, 50),
        "audit_lag_p99_ms": percentile_ms(lags, 99),
        "audit_lag_max_ms": round(lags[-1] * 1000, 1) if lags else None,
    }


def _seconds(value: Any) -> float:
    """A stored instant (a datetime, or ISO 8601 text on SQLite) as a POSIX timestamp."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


def ingest_only(suite: Suite, seconds: float, warm_up: float) -> dict[str, Any]:
    """Events/s the audit service ingests over one stream, and its CPU ms per event."""
    token = _service_token(suite.target("auth"), suite.service_secret)
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(suite.target("audit")) as channel:
        stub = pb_grpc.AuditServiceStub(channel)
        acked, elapsed = _stream(stub, metadata, _batches([]), warm_up)
        # Built before the clock starts, with room to spare, so that the client
        # spends the phase sending rather than building.
        needed = math.ceil(acked / elapsed * seconds * 1.5 / BATCH_SIZE) + IN_FLIGHT
        prebuilt = [_batch() for _ in range(needed)]
        before = suite.cpu_seconds()
        acked, elapsed = _stream(stub, metadata, _batches(prebuilt), seconds)
        after = suite.cpu_seconds()
    cpu_ms = (after["audit"] - before["audit"]) * 1000
    return {
        "audit_ingest_only_eps": round(acked / elapsed, 1),
        "audit_cpu_ms_per_event": round(cpu_ms / max(acked, 1), 3),
    }


def _stream(
    stub: pb_grpc.AuditServiceStub,
    metadata: Metadata,
    batches: Iterator[pb.IngestEventsRequest],
    seconds: float,
) -> tuple[int, float]:
    """Send batches over one stream for `seconds`; the events acked and the seconds taken."""
    slots = threading.Semaphore(IN_FLIGHT)
    deadline = time.perf_counter() + seconds

    def requests() -> Iterator[pb.IngestEventsRequest]:
        for batch in batches:
            # A stream that broke never frees its slot: give up rather than hang.
            if not slots.acquire(timeout=_TIMEOUT) or time.perf_counter() >= deadline:
                return
            yield batch

    begun = time.perf_counter()
    acked = 0
    for response in stub.IngestEvents(requests(), metadata=metadata, timeout=seconds + 60):
        if response.HasField("error"):
            raise RuntimeError(f"audit refused a batch: {response.error}")
        acked += len(response.ack.event_ids)
        slots.release()
    # The batches still in flight at the deadline are waited for and counted.
    return acked, time.perf_counter() - begun


def _batches(prebuilt: Iterable[pb.IngestEventsRequest]) -> Iterator[pb.IngestEventsRequest]:
    """The prebuilt batches, then fresh ones for as long as asked."""
    yield from prebuilt
    while True:
        yield _batch()


def _batch() -> pb.IngestEventsRequest:
    """BATCH_SIZE LOAN_CREATED events of one borrower, as the loans relay would send them."""
    organization_id, user_id = str(uuid.uuid4()), str(uuid.uuid4())
    actor = pb.Actor(user_id=user_id, organization_id=organization_id, role="BORROWER")
    now = timestamp(datetime.now(UTC))
    return pb.IngestEventsRequest(
        events=[_event(actor, organization_id, now) for _ in range(BATCH_SIZE)]
    )


def _event(actor: pb.Actor, organization_id: str, now: Timestamp) -> pb.AuditEvent:
    return pb.AuditEvent(
        event_id=str(uuid.uuid4()),
        action="LOAN_CREATED",
        resource_type="loan",
        resource_id=str(uuid.uuid4()),
        actor=actor,
        organization_ids=[organization_id],
        request_id=uuid.uuid4().hex,
        occur_time=now,
        changes=_CHANGES,
        source="loans",
    )


def _service_token(auth_target: str, secret: str) -> str:
    """A service token for "loans", in exchange for the suite's service secret."""
    request = auth_pb.IssueServiceTokenRequest(service_name="loans", service_secret=secret)
    with grpc.insecure_channel(auth_target) as channel:
        response = auth_grpc.AuthServiceStub(channel).IssueServiceToken(request, timeout=_TIMEOUT)
    if not response.HasField("token"):
        raise RuntimeError(f"IssueServiceToken failed: {response.error}")
    return response.token.access_token
