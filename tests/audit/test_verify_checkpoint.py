"""VerifyChain from its checkpoint: a call costs what is new, and is paced per caller.

The attacker edits the log with SQL, as in test_chain.py. An edit after the
checkpoint is found by the next call; one before it is beyond what a call
re-reads, and the offline full recomputation (`loansuite audit verify`) finds it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from loansuite.common.v1 import error_pb2
from sqlalchemy import create_engine, text

from services.audit import queries
from services.audit.chain import Head
from services.audit.throttle import CallRate, CallsThrottledError
from services.audit.wiring import start as start_audit
from services.shared._types import Metadata
from services.shared.db import Database
from tests.audit.chain_log import verify_command
from tests.audit.support import Stack, make_event


def verify(stack: Stack, metadata: Metadata) -> audit_pb.ChainVerification:
    response = stack.audit.VerifyChain(audit_pb.VerifyChainRequest(), metadata=metadata, timeout=30)
    assert response.HasField("verification"), response.error
    return response.verification


def checkpoint(audit_url: str) -> Head | None:
    db = Database(audit_url)
    try:
        with db.read() as session:
            return queries.checkpoint(session)
    finally:
        db.dispose()


def edit(audit_url: str, sequence: int) -> None:
    """The attacker changes one event in place, without rehashing it."""
    engine = create_engine(audit_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE audit_events SET resource_id = 'edited' WHERE sequence = :s"),
                {"s": sequence},
            )
    finally:
        engine.dispose()


def test_a_call_continues_from_the_checkpoint_and_finds_an_edit_after_it(
    stack: Stack, audit_url: str
) -> None:
    admin = stack.admin().metadata
    stack.ingest([make_event("org-a") for _ in range(5)])
    first = verify(stack, admin)
    after_first = checkpoint(audit_url)
    stack.ingest([make_event("org-a") for _ in range(3)])
    edit(audit_url, 7)

    second = verify(stack, admin)

    assert (first.intact, first.checked_events) == (True, 5)
    assert after_first == Head(5, first.head.hash)
    assert (second.intact, second.problem, second.first_bad_sequence) == (
        False,
        "HASH_MISMATCH",
        7,
    )
    assert second.checked_events == 6  # the checkpoint's five, and the sixth
    assert checkpoint(audit_url) == after_first  # a broken chain never moves it


def test_an_edit_before_the_checkpoint_is_for_the_offline_full_check(
    stack: Stack, audit_url: str
) -> None:
    admin = stack.admin().metadata
    stack.ingest([make_event("org-a") for _ in range(6)])
    verify(stack, admin)
    edit(audit_url, 2)

    online = verify(stack, admin)  # re-reads only the checkpoint's own event
    command = verify_command(stack.audit_settings.data_dir, audit_url)
    out, err = command.communicate(timeout=60)
    edit(audit_url, 6)  # the checkpoint's own event: every call checks that one
    at_checkpoint = verify(stack, admin)

    assert (online.intact, online.checked_events) == (True, 6)
    assert command.returncode == 1, err
    offline = json.loads(out)
    assert (offline["problem"], offline["first_bad_sequence"]) == ("HASH_MISMATCH", 2)
    assert (at_checkpoint.intact, at_checkpoint.problem) == (False, "HASH_MISMATCH")
    assert at_checkpoint.first_bad_sequence == 6


def test_a_head_inside_the_verified_prefix_is_still_compared(stack: Stack) -> None:
    admin = stack.admin().metadata
    stack.ingest([make_event("org-a") for _ in range(4)])
    verified = verify(stack, admin)
    listed = stack.all_events(stack.admin())

    def against(sequence: int, hash_: str) -> audit_pb.ChainVerification:
        head = audit_pb.ChainHead(sequence=sequence, hash=hash_)
        request = audit_pb.VerifyChainRequest(expected_head=head)
        return stack.audit.VerifyChain(request, metadata=admin, timeout=30).verification

    matching = against(2, listed[1].hash)
    wrong = against(2, "0" * 64)

    assert verified.checked_events == 4
    assert (matching.intact, matching.checked_events) == (True, 4)
    assert (wrong.intact, wrong.problem, wrong.first_bad_sequence) == (False, "HEAD_MISMATCH", 2)


@pytest.fixture
def paced(stack: Stack) -> Iterator[audit_grpc.AuditServiceStub]:
    """An audit server that allows each caller two VerifyChain calls an hour."""
    settings = stack.audit_settings.model_copy(
        update={"verify_chain_burst": 2, "verify_chain_interval_seconds": 3600.0}
    )
    server = start_audit(settings, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield audit_grpc.AuditServiceStub(channel)
    channel.close()
    server.stop(0)


def test_calls_are_paced_per_caller(stack: Stack, paced: audit_grpc.AuditServiceStub) -> None:
    busy, other = stack.user().metadata, stack.user().metadata
    request = audit_pb.VerifyChainRequest()
    allowed = [paced.VerifyChain(request, metadata=busy, timeout=30) for _ in range(2)]

    with pytest.raises(grpc.RpcError) as refused:
        paced.VerifyChain(request, metadata=(*busy, ("x-request-id", "req-paced")), timeout=30)
    someone_else = paced.VerifyChain(request, metadata=other, timeout=30)

    assert all(r.HasField("verification") for r in allowed)
    assert someone_else.HasField("verification")
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(refused.value)  # type: ignore[arg-type]  # the error is the call
    assert status is not None
    error, retry = error_pb2.Error(), error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(error)
    assert status.details[1].Unpack(retry)
    assert (error.code, error.reason, error.request_id) == (
        error_pb2.ERROR_CODE_RESOURCE_EXHAUSTED,
        "CALLS_THROTTLED",
        "req-paced",
    )
    assert 0 < retry.retry_delay.seconds <= 3600


def test_the_rate_allows_a_burst_then_one_call_per_interval() -> None:
    now = [1000.0]
    rate = CallRate(burst=3, interval=10.0, what="VerifyChain", clock=lambda: now[0])

    for _ in range(3):
        rate.admit("ada")
    with pytest.raises(CallsThrottledError) as refused:
        rate.admit("ada")
    rate.admit("bea")
    now[0] += 10.0
    rate.admit("ada")  # one more after an interval
    with pytest.raises(CallsThrottledError):
        rate.admit("ada")

    assert refused.value.retry_delay == timedelta(seconds=10.0)
    assert refused.value.as_status
