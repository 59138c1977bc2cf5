"""End-to-end support: the suite as OS processes, and what a client needs to drive them."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.support import LOANSUITE, free_port, sign_up

SERVICES = ("auth", "audit", "loans")


def wait_serving(
    port: int, timeout: float = 30.0, *, credentials: grpc.ChannelCredentials | None = None
) -> None:
    """Wait until the server on port reports SERVING on its health; over TLS with credentials."""
    target = f"127.0.0.1:{port}"
    with (
        grpc.insecure_channel(target)
        if credentials is None
        else grpc.secure_channel(target, credentials)
    ) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.RpcError):
                status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.1)
    raise AssertionError(f"nothing serving on port {port} after {timeout}s")


@dataclass
class Processes:
    """The suite as three OS processes; each can be stopped, killed and started again."""

    directory: Path
    env: dict[str, str]
    ports: dict[str, int]
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, service: str, *, instance: str = "") -> None:
        """Start service; a named instance is one more replica on a port of its own."""
        name = instance or service
        command = [LOANSUITE, "serve", service]
        if instance:
            self.ports.setdefault(instance, free_port())
            command += ["--port", str(self.ports[instance])]
        with (self.directory / f"{name}.log").open("ab") as log:  # the child keeps its own
            self.running[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        wait_serving(self.ports[name])

    def stop(self, service: str, sig: int = signal.SIGTERM) -> int:
        process = self.running.pop(service)
        process.send_signal(sig)
        return process.wait(30)

    def log(self, service: str) -> str:
        return (self.directory / f"{service}.log").read_text()

    def stop_all(self) -> None:
        for service in list(self.running):
            self.stop(service)


def borrower_token(processes: Processes) -> str:
    """The access token of a borrower just registered with the auth process."""
    with grpc.insecure_channel(f"127.0.0.1:{processes.ports['auth']}") as channel:
        return sign_up(auth_grpc.AuthServiceStub(channel)).access_token


def loan_request() -> pb.CreateLoanRequest:
    """A valid CreateLoan request with a request id of its own: each call creates a loan."""
    return pb.CreateLoanRequest(
        name="Heat Pump Retrofit",
        loan_type=pb.LOAN_TYPE_AMORTIZED,
        currency_code="EUR",
        principal_amount="250000.00",
        committed_amount="200000.00",
        drawn_amount="0.00",
        start_date="2027-03-01",
        maturity_date="2031-03-01",
        request_id=uuid.uuid4().hex,
    )
