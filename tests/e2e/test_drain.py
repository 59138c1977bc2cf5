"""SIGTERM: health NOT_SERVING at once, serving through the drain, streams end UNAVAILABLE."""

from __future__ import annotations

import signal

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb
from loansuite.loans.v1.loan_service_pb2_grpc import LoanServiceStub

from tests.e2e.support import Processes, borrower_token
from tests.support import bearer

pytestmark = pytest.mark.e2e

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def stopping_error(failure: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """A stream's end: its status, and the reason of the Error in its details."""
    status = rpc_status.from_call(failure)  # type: ignore[arg-type]  # the error is the call
    assert status is not None, "UNAVAILABLE without the Error detail"
    error = error_pb2.Error()
    assert status.details[0].Unpack(error)
    return failure.code(), error.reason


@pytest.mark.parametrize("backend", ["sqlite"])  # the drain is the same on either backend
def test_sigterm_drains_then_ends_open_streams_with_unavailable(processes: Processes) -> None:
    token = borrower_token(processes)
    # A long grace: a stream that held the process would hold it far past the wait below.
    processes.env.update({"LOANSUITE_DRAIN_SECONDS": "5", "LOANSUITE_GRACE_SECONDS": "120"})
    processes.start("loans", instance="draining")
    process = processes.running.pop("draining")
    with grpc.insecure_channel(f"127.0.0.1:{processes.ports['draining']}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        loans = LoanServiceStub(channel)
        health_watch = health.Watch(health_pb2.HealthCheckRequest())
        first = next(health_watch).status
        loan_watch = loans.WatchLoans(pb.WatchLoansRequest(), metadata=bearer(token))
        assert ("x-watch", "subscribed") in tuple(loan_watch.initial_metadata())

        process.send_signal(signal.SIGTERM)
        flipped = next(health_watch).status
        checked = health.Check(health_pb2.HealthCheckRequest(), timeout=10).status
        listed = loans.ListLoans(pb.ListLoansRequest(), metadata=bearer(token), timeout=10)
        with pytest.raises(grpc.RpcError) as loans_ended:
            for _ in loan_watch:  # no change comes: the stream only ends
                pass
        with pytest.raises(grpc.RpcError) as health_ended:
            next(health_watch)
        code = process.wait(60)

    assert (first, flipped) == (SERVING, NOT_SERVING)
    # During the drain the server still answers, so balancers that poll see NOT_SERVING
    # and calls already on their way are served.
    assert checked == NOT_SERVING
    assert listed.HasField("page"), listed.error
    assert stopping_error(loans_ended.value) == (grpc.StatusCode.UNAVAILABLE, "SERVER_STOPPING")
    assert stopping_error(health_ended.value) == (grpc.StatusCode.UNAVAILABLE, "SERVER_STOPPING")
    assert code == 0
    assert "draining: health reads NOT_SERVING" in processes.log("draining")
