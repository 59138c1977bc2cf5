"""gRPC server bootstrap: health, reflection, a port that fails loudly, keepalive, drain.

Stopping (SIGTERM) goes in steps: health reads NOT_SERVING at once while the
server goes on serving for the drain window, so balancers stop sending; then
the listener closes (new calls get UNAVAILABLE from the transport), open
streams end with UNAVAILABLE and the Error as its detail (Health/Watch too, so
no watcher holds the grace), and calls in flight finish within the grace.

Two server models share one set of (synchronous) servicers: grpc.aio, the
default, where each unary call runs either on the event loop (what a service
places there: reads, and writes suspended while they wait for their commit) or
on a thread pool (``services/shared/aio_handlers.py``); and grpcio's
thread-pool server. ``Settings.server_model`` picks one; the README's "Server
model" and docs/BENCHMARKS.md record why the default is what it is.
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
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.shared.aio_handlers import NativeHandlers, Placement, Placer
from services.shared.context import request_id_from
from services.shared.db import hold_read_connections
from services.shared.envelope import set_status, status_of
from services.shared.errors import ServerStoppingError
from services.shared.health import DrainingHealth
from services.shared.tls import TlsConfig

__all__ = ["Registration", "Server", "StopSignals", "create_server"]

log = logging.getLogger("loansuite.server")

Options = tuple[tuple[str, int], ...]

# A taken port must fail loudly, not be silently shared (grpc's default is on). Only the
# workers of one `serve --workers N`, whose supervisor checked the port first, share it.
SERVER_OPTIONS = (("grpc.so_reuseport", 0),)
SHARED_PORT_OPTIONS = (("grpc.so_reuseport", 1),)
# Clients' keepalive defaults must live with the server's enforcement: grpc-js and
# grpc-java clients ping idle streams every 10 s or so, and grpc core's default (one
# ping per 5 minutes without data, GOAWAY too_many_pings at the third early one) cut
# such a stream within a minute. The server's own pings find dead peers of idle streams.
KEEPALIVE_OPTIONS = (
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 2),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.max_pings_without_data", 0),  # the server's pings go on over idle streams
)
MESSAGE_BYTES = 4 * 1024 * 1024  # grpcio's receive default
_STATUSES = {
    True: health_pb2.HealthCheckResponse.SERVING,
    False: health_pb2.HealthCheckResponse.NOT_SERVING,
    None: health_pb2.HealthCheckResponse.UNKNOWN,
}


@dataclass(frozen=True)
class Registration:
    """One service to serve: its full proto name and how to add it to a server.

    Under grpc.aio, ``place`` says where each unary call runs (aio_handlers.Placement):
    on the event loop only what waits on no other service, in a greenlet if it waits
    for a commit.
    """

    name: str
    add: Callable[[Any], None]
    place: Placer | None = None


def _always(_method: str, _metadata: object) -> Placement:
    return "loop"


class Server:
    """A running gRPC server with its health servicer, and a graceful stop."""

    def __init__(self, engine: _Engine, port: int, health_servicer: DrainingHealth) -> None:
        self._engine = engine
        self.port = port
        self.health = health_servicer
        # Served on the HTTP side port beside /metrics, by path (auth's JWKS).
        self.documents: dict[str, Callable[[], bytes]] = {}
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
        """Report NOT_SERVING, stop accepting, end open streams with UNAVAILABLE, let calls
        in flight finish within grace, then release."""
        self.health.enter_graceful_shutdown()
        stopped = self._engine.begin_stop(grace)
        self.health.end_watches(_end_stopping)
        for callback in self._on_stopping:
            callback()
        stopped()
        for callback in reversed(self._on_stop):
            callback()

    def wait_for_signal(
        self, grace: float, drain: float = 0.0, signals: StopSignals | None = None
    ) -> None:
        """Serve until SIGTERM or SIGINT; drain for drain seconds, then stop gracefully.

        A second signal cuts the drain short (an operator's second Ctrl-C). ``signals``
        caught since before the server started; by default they are caught from now on.
        """
        signals = signals or StopSignals()
        # Python runs a signal's handler in the main thread, but the kernel may deliver the
        # signal to any thread (grpc's among them): a wait without a timeout could then
        # sleep through it. Waking every half second lets the handler run.
        while not signals.stopping.wait(0.5):
            pass
        self.health.enter_graceful_shutdown()
        if drain > 0:
            log.info("draining: health reads NOT_SERVING", extra={"drain_seconds": drain})
            signals.hurry.wait(drain)
        log.info("stopping", extra={"grace_seconds": grace})
        self.stop(grace)
        log.info("stopped")


class StopSignals:
    """SIGTERM and SIGINT, caught from its making: the first asks for a stop, the second
    for haste. Made before a service starts, so that a signal sent as soon as health
    reads SERVING is never the default one, which ends the process without its stop."""

    def __init__(self) -> None:
        self.stopping, self.hurry = threading.Event(), threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, *_: object) -> None:
        (self.hurry if self.stopping.is_set() else self.stopping).set()


def _end_stopping(ctx: grpc.ServicerContext) -> None:
    """End a stream that is not running a handler as a stopping server does."""
    set_status(ctx, status_of(ServerStoppingError(), request_id_from(ctx.invocation_metadata())))


_STOP_MARGIN_SECONDS = 5.0  # after the grace, for grpcio to cancel what is left


class _Engine:
    """The thread-pool server."""

    def __init__(self, max_workers: int, options: Options, max_calls: int | None) -> None:
        self._pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc")
        self.server: Any = grpc.server(
            self._pool, options=options, maximum_concurrent_rpcs=max_calls
        )

    def handlers(self, place: Placer | None) -> Any:
        """What a generated ``add_*_to_server`` function adds a servicer to."""
        return self.server

    def start(self) -> None:
        self.server.start()

    def begin_stop(self, grace: float) -> Callable[[], None]:
        """Stop accepting now; returns what waits until calls in flight are done.

        The wait is bounded: grpcio cancels what is left when the grace ends, and
        its stop event has been seen, rarely, never to fire after that, with no
        handler left running; a stop must not hang the process for it.
        """
        done = self.server.stop(grace)

        def wait() -> None:
            if not done.wait(grace + _STOP_MARGIN_SECONDS):
                log.warning("server not stopped after the grace period; going on")
            _drain(self._pool)

        return wait


def _drain(pool: futures.ThreadPoolExecutor) -> None:
    """Wait, bounded, for handlers still running after their calls were cancelled: what
    runs on stop next releases the engines and channels they may still be using."""
    drained = threading.Thread(target=pool.shutdown, name="drain-handlers", daemon=True)
    drained.start()
    drained.join(_STOP_MARGIN_SECONDS)
    if drained.is_alive():
        log.warning("handlers still running after the grace period; going on")


class _AioEngine(_Engine):
    """grpc.aio on its own event-loop thread: unary calls on the loop or on a thread pool,
    streams stepped on that pool (see aio_handlers.py)."""

    def __init__(self, max_workers: int, options: Options, max_calls: int | None) -> None:
        # uvloop: the loop's own work per call (scheduling, wake-ups, the poller's fd) in
        # C, about a tenth of a Health/Check's CPU (docs/BENCHMARKS.md).
        self._loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aio", daemon=True)
        self._thread.start()
        # Reads on the loop run one at a time: each database lends the loop one connection.
        self._loop.call_soon_threadsafe(hold_read_connections)
        self._pool = pool = futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="rpc"
        )

        async def make() -> grpc.aio.Server:
            return grpc.aio.server(
                migration_thread_pool=pool, options=options, maximum_concurrent_rpcs=max_calls
            )

        self.server = self._run(make())

    def handlers(self, place: Placer | None) -> Any:
        return NativeHandlers(self.server, self._pool, place)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def start(self) -> None:
        self._run(self.server.start())

    def begin_stop(self, grace: float) -> Callable[[], None]:
        stopping = asyncio.run_coroutine_threadsafe(self.server.stop(grace), self._loop)

        def wait() -> None:
            stopping.result()
            # A handler still on the pool (a stream's last step) hands its results to the
            # loop: the loop must outlive it.
            _drain(self._pool)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

        return wait


def create_server(
    registrations: Sequence[Registration],
    address: str,
    *,
    max_workers: int = 32,
    model: Literal["thread", "aio"] = "aio",
    reuse_port: bool = False,
    max_concurrent_rpcs: int | None = None,
    tls: TlsConfig | None = None,
    max_receive_message_bytes: int = MESSAGE_BYTES,
    max_send_message_bytes: int = MESSAGE_BYTES,
) -> Server:
    """Start a server on address ("host:0" picks a free port) with health and reflection.

    With tls the port speaks TLS only (and demands client certificates if tls says so).

    Past ``max_concurrent_rpcs`` calls in progress or waiting for a thread (open
    streams count), grpcio refuses new calls with RESOURCE_EXHAUSTED instead of
    queueing them without bound; None leaves the queue unbounded.
    """
    options = (
        *(SHARED_PORT_OPTIONS if reuse_port else SERVER_OPTIONS),
        *KEEPALIVE_OPTIONS,
        ("grpc.max_receive_message_length", max_receive_message_bytes),
        ("grpc.max_send_message_length", max_send_message_bytes),
    )
    engine_class = _AioEngine if model == "aio" else _Engine
    engine = engine_class(max_workers, options, max_concurrent_rpcs)
    health_servicer = DrainingHealth()
    # Check reads a dict: it never waits on anything.
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, engine.handlers(_always))
    names = [r.name for r in registrations]
    for registration in registrations:
        registration.add(engine.handlers(registration.place))
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    reflection.enable_server_reflection(
        [*names, health_name, reflection.SERVICE_NAME], engine.server
    )
    if tls is None:
        port = engine.server.add_insecure_port(address)
    else:
        port = engine.server.add_secure_port(address, tls.server_credentials())
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}: is the port taken?")
    engine.start()
    for name in ["", *names]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return Server(engine, port, health_servicer)
