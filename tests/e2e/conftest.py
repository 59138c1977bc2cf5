"""Real processes: the `loansuite` command serving each service on free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import SERVICE_SECRET, Databases

LOANSUITE = str(Path(sys.executable).parent / "loansuite")
SERVICES = ("auth", "audit", "loans")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_serving(port: int, timeout: float = 30.0) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
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


@pytest.fixture
def processes(backend: str, tmp_path: Path) -> Iterator[Processes]:
    """auth, audit and loans as processes over fresh databases of the backend."""
    databases = Databases(backend, tmp_path)
    ports = {service: free_port() for service in SERVICES}
    env = {
        **os.environ,
        "LOANSUITE_DATA_DIR": str(tmp_path),
        "LOANSUITE_SERVICE_SECRET": SERVICE_SECRET,
        "LOANSUITE_USER_CACHE_TTL_SECONDS": "1",
        "LOANSUITE_GRACE_SECONDS": "2",  # an open Health.Watch stream holds the full grace
        **{f"LOANSUITE_{s.upper()}_PORT": str(p) for s, p in ports.items()},
        **{f"LOANSUITE_{s.upper()}_DATABASE_URL": databases.new(s) for s in SERVICES},
    }
    suite = Processes(tmp_path, env, ports)
    try:
        for service in SERVICES:
            suite.start(service)
        yield suite
    finally:
        suite.stop_all()
        databases.drop_all()
