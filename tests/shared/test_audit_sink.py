"""The relay's AuditSink: batches over one IngestEvents stream, replaced, ended and abandoned."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc

from services.shared.audit_client import AuditSink, relay_channel
from services.shared.outbox import AuditRecord
from tests.shared.relay_support import StaticToken
from tests.support import AuditSpy, eventually, free_port, serve_spy


def _records(count: int) -> list[AuditRecord]:
    return [
        AuditRecord(
            event_id=str(uuid.uuid4()),
            action="THING_CHANGED",
            resource_type="thing",
            resource_id=f"thing-{n}",
            actor_user_id="",
            actor_organization_id="",
            actor_role="",
            organization_ids=[],
            request_id="",
            occur_time=datetime.now(UTC).isoformat(),
            source="test",
        )
        for n in range(count)
    ]


@pytest.fixture
def audit() -> Iterator[tuple[AuditSpy, int]]:
    spy, port = AuditSpy(), free_port()
    server = serve_spy(spy, port)
    yield spy, port
    server.stop(0)


@pytest.fixture
def channel(audit: tuple[AuditSpy, int]) -> Iterator[grpc.Channel]:
    with relay_channel(f"127.0.0.1:{audit[1]}") as opened:
        yield opened


def _sink(channel: grpc.Channel, **options: float) -> AuditSink:
    return AuditSink(audit_grpc.AuditServiceStub(channel), StaticToken(), timeout=5, **options)


def test_batches_share_one_stream_until_the_sink_rests(
    audit: tuple[AuditSpy, int], channel: grpc.Channel
) -> None:
    spy, _ = audit
    sink = _sink(channel, stream_seconds=60)
    batches = [_records(3), _records(1), _records(2)]

    acked = [sink.send(batch) for batch in batches]

    assert acked == [{r.event_id for r in batch} for batch in batches]
    assert spy.event_ids == [r.event_id for batch in batches for r in batch]
    assert len(spy.tokens) == 1  # one call carried the three
    assert spy.ended == 0
    sink.rest()
    assert spy.ended == 1  # closed cleanly, and over when rest returned
    sink.rest()  # nothing open: nothing to do
    later = _records(1)
    assert sink.send(later) == {later[0].event_id}
    assert len(spy.tokens) == 2


def test_a_stream_older_than_its_time_is_ended_and_replaced(
    audit: tuple[AuditSpy, int], channel: grpc.Channel
) -> None:
    spy, _ = audit
    sink = _sink(channel, stream_seconds=0)  # every stream is already old at the next batch

    for _ in range(3):
        sink.send(_records(1))

    assert len(spy.tokens) == 3
    assert spy.ended == 2  # the third is still open
    sink.rest()
    assert spy.ended == 3


def test_a_refused_batch_abandons_the_stream_and_the_next_opens_another(
    audit: tuple[AuditSpy, int], channel: grpc.Channel
) -> None:
    spy, _ = audit
    sink = _sink(channel, stream_seconds=60)
    sink.send(_records(1))
    spy.refuse = True
    refused = _records(2)

    with pytest.raises(RuntimeError, match="INVALID_EVENT"):
        sink.send(refused)

    assert sink.send(refused) == {r.event_id for r in refused}  # sent again, on a new stream
    assert len(spy.tokens) == 2
    assert spy.event_ids[-2:] == [r.event_id for r in refused]


def test_a_stream_lost_with_audit_fails_its_batch_and_the_next_goes_to_the_new_audit() -> None:
    spy, port = AuditSpy(), free_port()
    server = serve_spy(spy, port)
    with relay_channel(f"127.0.0.1:{port}") as channel:
        sink = _sink(channel, stream_seconds=60)
        sink.send(_records(1))
        server.stop(0)  # the open stream goes with it
        lost = _records(1)
        with pytest.raises(grpc.RpcError):
            sink.send(lost)
        returned = AuditSpy()
        server = serve_spy(returned, port)
        try:
            eventually(lambda: _delivered(sink, lost), "the batch reached the returned audit")
        finally:
            server.stop(0)
    assert returned.event_ids == [lost[0].event_id]
    assert len(returned.tokens) == 1


def _delivered(sink: AuditSink, records: list[AuditRecord]) -> bool:
    try:
        return sink.send(records) == {r.event_id for r in records}
    except grpc.RpcError:  # still connecting: the relay would back off and retry
        return False
