"""gRPC server bootstrap: health, reflection, a port that fails loudly, graceful stop.

Two server models share one set of (synchronous) servicers: grpcio's
thread-pool server, and grpc.aio with the servicers run on its migration
thread pool. ``Settings.server_model`` picks one; docs/BENCHMARKS.md records
why the default is what it is.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

__all__ = ["Registration", "Server", "create_server"]

log = logging.getLogger("loansuite.server")

Options = tuple[tuple[str, int], ...]

# A taken port must fail loudly, not be silently shared (grpc's default is on). Only the
# workers of one `serve --workers N`, whose supervisor checked the port first, share it.
SERVER_OPTIONS = (("grpc.so_reuseport", 0),)
SHARED_PORT_OPTIONS = (("grpc.so_reuseport", 1),)
_STATUSES = {
    True: health_pb2.HealthCheckResponse.SERVING,
    False: health_pb2.HealthCheckResponse.NOT_SERVING,
    None: health_pb2.HealthCheckResponse.UNKNOWN,
}


@dataclass(frozen=True)
class Registration:
    """One service to serve: its full proto name and how to add it to a server."""

    name: str
    add: Callable[[Any], None]


class Server:
    """A running gRPC server with its health servicer, and a graceful stop."""

    def __init__(self, engine: _Engine, port: int, health_servicer: health.HealthServicer) -> None:
        self._engine = engine
        self.port = port
        self.health = health_servicer
        self._on_stop: list[Callable[[], None]] = []
        self._on_stopping: list[Callable[[], None]] = []

    def set_health(self, name: str, serving: bool | None) -> None:
        """Report an extra health service name (a relay's, say): None is UNKNOWN.

        Ignored once stopping: the whole server then answers NOT_SERVING.
        """
        status = _STATUSES[serving]
        self.health.set(name, status)

    def on_stop(self, callback: Callable[[], None]) -> None:
        """Run callback once the server has stopped (release relays, engines)."""
        self._on_stop.append(callback)

    def on_stopping(self, callback: Callable[[], None]) -> None:
        """Run callback when a stop begins, before the grace period: end long-lived streams,
        which would otherwise hold the whole grace and then be cancelled."""
        self._on_stopping.append(callback)

    def stop(self, grace: float) -> None:
        """Report NOT_SERVING, let in-flight calls finish within grace, then release."""
        self.health.enter_graceful_shutdown()
        for callback in self._on_stopping:
            callback()
        self._engine.stop(grace)
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


class _Engine:
    """The thread-pool server."""

    def __init__(self, max_workers: int, options: Options, max_calls: int | None) -> None:
        pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc")
        self.server: Any = grpc.server(pool, options=options, maximum_concurrent_rpcs=max_calls)

    def start(self) -> None:
        self.server.start()

    def stop(self, grace: float) -> None:
        self.server.stop(grace).wait()


class _AioEngine(_Engine):
    """grpc.aio on its own event-loop thread, running the servicers on a thread pool."""

    def __init__(self, max_workers: int, options: Options, max_calls: int | None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aio", daemon=True)
        self._thread.start()
        pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc")

        async def make() -> grpc.aio.Server:
            return grpc.aio.server(
                migration_thread_pool=pool, options=options, maximum_concurrent_rpcs=max_calls
            )

        self.server = self._run(make())

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def start(self) -> None:
        self._run(self.server.start())

    def stop(self, grace: float) -> None:
        self._run(self.server.stop(grace))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def create_server(
    registrations: Sequence[Registration],
    address: str,
    *,
    max_workers: int = 32,
    model: Literal["thread", "aio"] = "thread",
    reuse_port: bool = False,
    max_concurrent_rpcs: int | None = None,
) -> Server:
    """Start a server on address ("host:0" picks a free port) with health and reflection.

    Past ``max_concurrent_rpcs`` calls in progress or waiting for a thread (open
    streams count), grpcio refuses new calls with RESOURCE_EXHAUSTED instead of
    queueing them without bound; None leaves the queue unbounded.
    """
    options = SHARED_PORT_OPTIONS if reuse_port else SERVER_OPTIONS
    engine_class = _AioEngine if model == "aio" else _Engine
    engine = engine_class(max_workers, options, max_concurrent_rpcs)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, engine.server)
    names = [r.name for r in registrations]
    for registration in registrations:
        registration.add(engine.server)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection(
        [*names, health_name, reflection.SERVICE_NAME], engine.server
    )
    port = engine.server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}: is the port taken?")
    engine.start()
    for name in ["", *names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return Server(engine, port, health_servicer)
