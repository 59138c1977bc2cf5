"""gRPC server bootstrap: health, reflection, a port that fails loudly, graceful stop."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

__all__ = ["Registration", "Server", "create_server"]

log = logging.getLogger("loansuite.server")

# A taken port must fail loudly, not be silently shared (grpc's default is on).
SERVER_OPTIONS = (("grpc.so_reuseport", 0),)


@dataclass(frozen=True)
class Registration:
    """One service to serve: its full proto name and how to add it to a server."""

    name: str
    add: Callable[[grpc.Server], None]


class Server:
    """A running gRPC server with its health servicer, and a graceful stop."""

    def __init__(
        self,
        server: grpc.Server,
        port: int,
        health_servicer: health.HealthServicer,
        names: Sequence[str],
    ) -> None:
        self.grpc_server = server
        self.port = port
        self.health = health_servicer
        self._names = names
        self._on_stop: list[Callable[[], None]] = []

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run callback once the server has stopped (release relays, engines)."""
        self._on_stop.append(callback)

    def stop(self, grace: float) -> None:
        """Report NOT_SERVING, let in-flight calls finish within grace, then release."""
        self.health.enter_graceful_shutdown()
        self.grpc_server.stop(grace).wait()
        for callback in reversed(self._on_stop):
            callback()

    def wait_for_signal(self, grace: float) -> None:
        """Serve until SIGTERM or SIGINT, then stop gracefully."""
        stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopping.set())
        stopping.wait()
        log.info("stopping", extra={"grace_seconds": grace})
        self.stop(grace)
        log.info("stopped")


def create_server(
    registrations: Sequence[Registration], address: str, *, max_workers: int = 32
) -> Server:
    """Start a server on address ("host:0" picks a free port) with health and reflection."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
        options=SERVER_OPTIONS,
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [r.name for r in registrations]
    for registration in registrations:
        registration.add(server)
    reflection.enable_server_reflection(
        [
            *names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}: is the port taken?")
    server.start()
    for name in ["", *names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return Server(server, port, health_servicer, names)
