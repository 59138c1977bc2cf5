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

from tests.support import LOANSUITE, eventually, free_port, sign_up

SERVICES = ("auth", "audit", "loans")
# A channel whose first connection is refused waits out gRPC's reconnect backoff (1 s,
# then 1.6 times longer each time) before it tries again, however often it is called;
# polling a process that is still starting, it tries again at the next poll instead.
POLLING_CHANNEL = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 100),
]


def wait_serving(
    port: int, timeout: float = 30.0, *, credentials: grpc.ChannelCredentials | None = None
) -> None:
    """Wait until the server on port reports SERVING on its health; over TLS with credentials."""
    target = f"127.0.0.1:{port}"
    with (
        grpc.insecure_channel(target, options=POLLING_CHANNEL)
        if credentials is None
        else grpc.secure_channel(target, credentials, options=POLLING_CHANNEL)
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


def wait_handling_sigterm(*pids: int) -> None:
    """Wait until each process has its SIGTERM handler in place (Linux /proc).

    A service reports SERVING a moment before it installs the handler; a SIGTERM in
    between ends it at once, without its stop and its "stopped" line.
    """

    def handles(pid: int) -> bool:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
        return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)

    eventually(lambda: all(handles(pid) for pid in pids), f"processes {pids} handle SIGTERM")


def children(pid: int) -> list[int]:
    """The processes that pid started and that still run (Linux /proc)."""
    return [
        int(child)
        for listing in Path(f"/proc/{pid}/task").glob("*/children")
        for child in listing.read_text().split()
    ]


@dataclass
class Processes:
    """The suite as three OS processes; each can be stopped, killed and started again."""

    directory: Path
    env: dict[str, str]
    ports: dict[str, int]
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, service: str, *, instance: str = "") -> None:
        """Start service; a named instance is one more replica on a port of its own."""
        self._wait(self._launch(service, instance))

    def start_all(self, services: tuple[str, ...] = SERVICES) -> None:
        """Start services side by side, as `loansuite up` does, then wait for each."""
        for name in [self._launch(service, "") for service in services]:
            self._wait(name)

    def _wait(self, name: str) -> None:
        wait_serving(self.ports[name])
        wait_handling_sigterm(self.running[name].pid)

    def _launch(self, service: str, instance: str) -> str:
        name = instance or service
        command = [LOANSUITE, "serve", service]
        if instance:
            self.ports.setdefault(instance, free_port())
            command += ["--port", str(self.ports[instance])]
        with (self.directory / f"{name}.log").open("ab") as log:  # the child keeps its own
            self.running[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        return name

    def stop(self, service: str, sig: int = signal.SIGTERM) -> int:
        process = self.running.pop(service)
        process.send_signal(sig)
        return process.wait(30)

    def log(self, service: str) -> str:
        return (self.directory / f"{service}.log").read_text()

    def stop_all(self) -> None:
        """SIGTERM every process at once, then wait for each: their grace runs side by side."""
        stopping = list(self.running.values())
        self.running.clear()
        for process in stopping:
            process.send_signal(signal.SIGTERM)
        try:
            for process in stopping:
                process.wait(30)
        finally:  # one that outlived its 30 s is not left behind
            for process in stopping:
                if process.poll() is None:
                    process.kill()
                    process.wait()


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
