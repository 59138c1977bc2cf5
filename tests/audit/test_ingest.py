"""IngestEvents against real auth and audit servers: acks after commit, each event once."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from grpc_status import rpc_status
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from loansuite.common.v1 import error_pb2
from sqlalchemy import text

from services.audit.chain import Head
from services.audit.conversions import records_from_proto
from services.audit.wiring import start as start_audit
from services.shared.audit_client import AuditSink
from services.shared.auth_client import ServiceCredentials
from services.shared.db import Database
from services.shared.outbox import AuditRecord, Change
from tests.audit.support import Stack, acked_ids, make_event
from tests.support import SERVICE_SECRET

INGEST = "AuditServicer.IngestEvents"


def test_batches_are_acked_then_listed_with_sequence_and_fields(stack: Stack) -> None:
    reader = stack.user()
    first = [make_event(reader.organization_id, "other-org") for _ in range(3)]
    second = [make_event(reader.organization_id, action="LOAN_SUBMITTED")]

    responses = stack.ingest(first, second)

    assert acked_ids(responses) == [[e.event_id for e in first], [e.event_id for e in second]]
    listed = stack.all_events(reader)
    assert [e.event_id for e in listed] == [e.event_id for e in first + second]
    assert [e.sequence for e in listed] == [1, 2, 3, 4]  # gapless from 1, in batch order
    assert len({e.hash for e in listed}) == 4
    for sent, stored in zip(first + second, listed, strict=True):
        assert stored.ingest_time.seconds > 0
        assert Head.is_valid_hash(stored.hash)
        stored.ClearField("sequence")
        stored.ClearField("ingest_time")
        stored.ClearField("hash")
        expected = audit_pb.AuditEvent()
        expected.CopyFrom(sent)
        expected.organization_ids[:] = sorted(sent.organization_ids)
        assert stored == expected


def test_duplicates_are_acked_but_stored_once(stack: Stack) -> None:
    reader = stack.user()
    one, two, three = (make_event(reader.organization_id) for _ in range(3))

    responses = stack.ingest([one, two], [two, three, three])
    again = stack.ingest([one, three])

    assert acked_ids(responses) == [
        [one.event_id, two.event_id],
        [two.event_id, three.event_id, three.event_id],
    ]
    assert acked_ids(again) == [[one.event_id, three.event_id]]
    listed = [e.event_id for e in stack.all_events(reader)]
    assert listed == [one.event_id, two.event_id, three.event_id]


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((), "TOKEN_MISSING"),
        ((("authorization", "Basic abc"),), "TOKEN_MALFORMED"),
        ((("authorization", "Bearer not.a.jwt"),), "TOKEN_MALFORMED"),
    ],
)
def test_ingest_without_a_valid_token_is_unauthenticated(
    stack: Stack, metadata: tuple[tuple[str, str], ...], reason: str
) -> None:
    call = stack.audit.IngestEvents(
        iter([audit_pb.IngestEventsRequest(events=[make_event("org")])]),
        metadata=(*metadata, ("x-request-id", "req-unauth")),
        timeout=10,
    )

    responses = list(call)

    assert len(responses) == 1
    error = responses[0].error
    assert (error.code, error.reason) == (error_pb2.ERROR_CODE_UNAUTHENTICATED, reason)
    assert error.request_id == "req-unauth"
    assert ("x-request-id", "req-unauth") in tuple(call.trailing_metadata() or ())


def test_ingest_with_a_user_token_is_permission_denied(stack: Stack) -> None:
    user = stack.user()

    responses = stack.ingest([make_event(user.organization_id)], metadata=user.metadata)

    assert len(responses) == 1
    error = responses[0].error
    assert error.code == error_pb2.ERROR_CODE_PERMISSION_DENIED
    assert error.reason == "SERVICE_IDENTITY_REQUIRED"
    assert stack.all_events(user) == []


def test_invalid_batch_names_each_field_stores_nothing_and_ends_the_stream(stack: Stack) -> None:
    reader = stack.user()
    valid = make_event(reader.organization_id)
    bad_action = make_event(reader.organization_id, action="loanCreated")
    bad_id = make_event(reader.organization_id, event_id="not-a-uuid")
    bad_id.ClearField("occur_time")
    bad_id.actor.user_id = "x" * 201
    later = [make_event(reader.organization_id)]

    responses = stack.ingest([valid, bad_action, bad_id], later)

    assert len(responses) == 1, "the stream ends at the invalid batch"
    error = responses[0].error
    assert error.code == error_pb2.ERROR_CODE_INVALID_ARGUMENT
    assert error.reason == "ACTION_INVALID"
    assert [v.field for v in error.field_violations] == [
        "events[1].action",
        "events[2].event_id",
        "events[2].actor.user_id",
        "events[2].occur_time",
    ]
    assert stack.all_events(reader) == []


def test_unexpected_failure_is_internal_without_detail(stack: Stack, audit_url: str) -> None:
    broken = Database(audit_url)
    with broken.engine.begin() as connection:
        connection.execute(text("DROP TABLE audit_event_organizations"))
    broken.dispose()

    responses = stack.ingest(
        [make_event("org")], metadata=(*stack.service_metadata(), ("x-request-id", "req-boom"))
    )

    assert len(responses) == 1
    error = responses[0].error
    assert (error.code, error.reason, error.request_id) == (
        error_pb2.ERROR_CODE_INTERNAL,
        "INTERNAL",
        "req-boom",
    )
    assert "audit_event" not in error.message
    assert not error.field_violations


def test_the_shared_audit_sink_gets_every_id_acked(stack: Stack) -> None:
    reader = stack.user()
    records = [
        AuditRecord(
            event_id=str(uuid.uuid4()),
            action="USER_LOGGED_IN",
            resource_type="user",
            resource_id=reader.user_id,
            actor_user_id=reader.user_id,
            actor_organization_id=reader.organization_id,
            actor_role="BORROWER",
            organization_ids=[reader.organization_id],
            request_id="req-sink",
            occur_time=datetime.now(UTC).isoformat(),
            source="auth",
            changes=[Change("last_login_time", "null", '"2026-01-01T00:00:00Z"')],
        )
        for _ in range(5)
    ]
    credentials = ServiceCredentials(stack.auth, service_name="auth", secret=SERVICE_SECRET)
    sink = AuditSink(stack.audit, credentials)

    assert sink.send(records) == {r.event_id for r in records}
    assert sink.send(records[:2]) == {r.event_id for r in records[:2]}  # a redelivery
    listed = stack.all_events(reader)
    assert [e.event_id for e in listed] == [r.event_id for r in records]
    assert records_from_proto(listed) == records


def _call_records(caplog: pytest.LogCaptureFixture, count: int) -> list[logging.LogRecord]:
    """The log lines of the first `count` finished IngestEvents calls, once all are logged."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        records = [
            r for r in caplog.records if r.getMessage() == "call" and r.__dict__["rpc"] == INGEST
        ]
        if len(records) >= count:
            return records
        time.sleep(0.02)
    raise AssertionError("the streams were never logged")


def test_a_client_going_away_mid_stream_is_no_failure(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="loansuite.rpc")
    metadata = stack.service_metadata()
    hold = threading.Event()

    def requests(event: audit_pb.AuditEvent) -> Iterator[audit_pb.IngestEventsRequest]:
        yield audit_pb.IngestEventsRequest(events=[event])
        hold.wait(10)  # the second batch never comes

    # Several times: grpcio reports a cancel during a read either as an error
    # or, when it loses a race, as the end of the requests.
    for _ in range(5):
        event = make_event("org")
        call = stack.audit.IngestEvents(requests(event), metadata=metadata, timeout=30)
        assert list(next(iter(call)).ack.event_ids) == [event.event_id]
        call.cancel()
    hold.set()

    outcomes = {r.__dict__["outcome"] for r in _call_records(caplog, 5)}
    assert outcomes <= {"CANCELLED", "OK"}
    assert "unexpected failure" not in caplog.messages


@pytest.mark.parametrize("server_model", ["aio"])
def test_the_aio_server_model_ingests_and_refuses_alike(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="loansuite.rpc")
    reader = stack.user()
    batch = [make_event(reader.organization_id) for _ in range(3)]

    responses = stack.ingest(batch, batch[:1])
    refused = stack.ingest(batch, metadata=reader.metadata)

    assert acked_ids(responses) == [[e.event_id for e in batch], [batch[0].event_id]]
    assert [e.event_id for e in stack.all_events(reader)] == [e.event_id for e in batch]
    assert refused[0].error.reason == "SERVICE_IDENTITY_REQUIRED"
    outcomes = [r.__dict__["outcome"] for r in _call_records(caplog, 2)]
    assert outcomes == ["OK", "PERMISSION_DENIED"]


@pytest.mark.parametrize("server_model", ["thread", "aio"])
def test_a_stopping_server_takes_no_further_batch_on_an_open_stream(stack: Stack) -> None:
    reader = stack.user()
    server = start_audit(stack.audit_settings, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    requests: queue.SimpleQueue[audit_pb.IngestEventsRequest | None] = queue.SimpleQueue()
    call = audit_grpc.AuditServiceStub(channel).IngestEvents(
        iter(requests.get, None), metadata=stack.service_metadata(), timeout=30
    )
    responses = iter(call)
    stopper = threading.Thread(target=server.stop, args=(10,))
    sent: list[str] = []
    try:
        first = make_event(reader.organization_id)
        requests.put(audit_pb.IngestEventsRequest(events=[first]))
        assert list(next(responses).ack.event_ids) == [first.event_id]
        stopper.start()
        refused = _send_until_refused(requests, responses, reader.organization_id, sent)
        stopper.join(15)
    finally:
        requests.put(None)
        channel.close()

    assert not stopper.is_alive()  # the stream did not hold the stop's grace
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    status = rpc_status.from_call(refused)  # type: ignore[arg-type]  # the error is the call
    assert status is not None
    error = error_pb2.Error()
    assert status.details[0].Unpack(error)
    assert error.reason == "SERVER_STOPPING"
    stored = {e.event_id for e in stack.all_events(reader)}
    assert first.event_id in stored
    assert sent[-1] not in stored  # the refused batch: its relay sends it again elsewhere
    assert set(sent[:-1]) <= stored


def _send_until_refused(
    requests: queue.SimpleQueue[audit_pb.IngestEventsRequest | None],
    responses: Iterator[audit_pb.IngestEventsResponse],
    organization_id: str,
    sent: list[str],
) -> grpc.RpcError:
    """Send batch after batch on the stream; the error that ended it."""
    # The stop begins on its own thread; batches sent until it has are still taken.
    for _ in range(500):
        event = make_event(organization_id)
        sent.append(event.event_id)
        requests.put(audit_pb.IngestEventsRequest(events=[event]))
        try:
            response = next(responses)
        except grpc.RpcError as error:
            return error
        assert list(response.ack.event_ids) == [event.event_id]
        time.sleep(0.02)
    raise AssertionError("the stopping server went on taking batches")
