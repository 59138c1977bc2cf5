"""Calls to auth made while serving a call carry that call's remaining deadline."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from loansuite.audit.v1 import audit_service_pb2 as pb
from loansuite.audit.v1 import audit_service_pb2_grpc as pb_grpc

from services.shared.auth_client import CALL_TIMEOUT, call_timeout
from services.shared.envelope import unary
from services.shared.server import Registration, create_server


class TimeoutProbe(pb_grpc.AuditServiceServicer):
    """Answers VerifyChain after noting the timeout a call to auth would get right now."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    @unary(pb.VerifyChainResponse)
    def VerifyChain(
        self, request: pb.VerifyChainRequest, context: grpc.ServicerContext
    ) -> pb.VerifyChainResponse:
        self.seen.append(call_timeout())
        return pb.VerifyChainResponse()


@pytest.fixture
def probe() -> Iterator[tuple[TimeoutProbe, pb_grpc.AuditServiceStub]]:
    servicer = TimeoutProbe()  # type: ignore[abstract]  # only VerifyChain is called
    name = pb.DESCRIPTOR.services_by_name["AuditService"].full_name
    server = create_server(
        [Registration(name, lambda s: pb_grpc.add_AuditServiceServicer_to_server(servicer, s))],
        "127.0.0.1:0",
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield servicer, pb_grpc.AuditServiceStub(channel)
    channel.close()
    server.stop(0)


def test_a_caller_deadline_shorter_than_the_default_is_passed_on(
    probe: tuple[TimeoutProbe, pb_grpc.AuditServiceStub],
) -> None:
    servicer, stub = probe
    stub.VerifyChain(pb.VerifyChainRequest(), timeout=2.0)

    # The deadline crosses the wire as a grpc-timeout in whole units, which may round it up
    # by a few milliseconds; what matters is that the 2 s, not the 5 s default, was passed on.
    assert 0 < servicer.seen[0] <= 2.1 < CALL_TIMEOUT


def test_without_a_deadline_or_with_a_longer_one_the_default_holds(
    probe: tuple[TimeoutProbe, pb_grpc.AuditServiceStub],
) -> None:
    servicer, stub = probe
    stub.VerifyChain(pb.VerifyChainRequest())
    stub.VerifyChain(pb.VerifyChainRequest(), timeout=60.0)

    assert servicer.seen == [CALL_TIMEOUT, CALL_TIMEOUT]


def test_outside_a_call_the_default_holds() -> None:
    assert call_timeout() == CALL_TIMEOUT
