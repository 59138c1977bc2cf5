"""The benchmark's client reaches every loans worker, not only the one its connection chose."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from services.bench import phases
from services.bench.suite import Suite
from services.shared.aio_handlers import GenericHandler
from services.shared.server import SHARED_PORT_OPTIONS

CHECK = "/grpc.health.v1.Health/Check"


class _Counting(GenericHandler):
    """Answers Health/Check as SERVING and counts the calls of each client connection."""

    def __init__(self) -> None:
        self.peers: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def service(self, details: grpc.HandlerCallDetails) -> Any:
        if details.method != CHECK:
            return None
        return grpc.unary_unary_rpc_method_handler(
            self._check,
            request_deserializer=health_pb2.HealthCheckRequest.FromString,
            response_serializer=health_pb2.HealthCheckResponse.SerializeToString,
        )

    def _check(
        self, _request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        with self._lock:
            self.peers[context.peer()] += 1
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def _serve(port: int) -> tuple[grpc.Server, _Counting, int]:
    handler = _Counting()
    server = grpc.server(
        futures.ThreadPoolExecutor(4), handlers=[handler], options=SHARED_PORT_OPTIONS
    )
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, handler, bound


@pytest.fixture
def two_workers() -> Iterator[tuple[int, list[_Counting]]]:
    """Two servers sharing one port, as `serve loans --workers 2` runs its processes."""
    first, one, port = _serve(0)
    second, two, _ = _serve(port)
    try:
        yield port, [one, two]
    finally:
        first.stop(None)
        second.stop(None)


def _suite(port: int, workers: int) -> Suite:
    return Suite({"loans": port}, "", "", {}, {}, loans_workers=workers)


def test_with_several_workers_each_caller_has_a_connection_and_every_worker_is_called(
    two_workers: tuple[int, list[_Counting]],
) -> None:
    port, servers = two_workers
    callers = 32  # the kernel picks a worker per connection: all 32 on one is 1 in 2**31
    with _suite(port, workers=2).loans_channel(callers) as channel:
        call = phases.health_call(channel)
        for _ in range(callers * 3):
            call()
    peers = collections.Counter({p: n for s in servers for p, n in s.peers.items()})
    assert len(peers) == callers
    assert set(peers.values()) == {3}  # the connections were taken in turn
    assert all(sum(s.peers.values()) > 0 for s in servers)


def test_with_one_worker_the_calls_share_one_connection(
    two_workers: tuple[int, list[_Counting]],
) -> None:
    port, servers = two_workers
    with _suite(port, workers=1).loans_channel(16) as channel:
        call = phases.health_call(channel)
        for _ in range(20):
            call()
    peers = [p for s in servers for p in s.peers]
    assert len(peers) == 1
    assert sum(n for s in servers for n in s.peers.values()) == 20


def test_futures_and_with_call_take_the_connections_in_turn(
    two_workers: tuple[int, list[_Counting]],
) -> None:
    port, servers = two_workers
    with phases.Connections(f"127.0.0.1:{port}", 4) as channel:
        check = channel.unary_unary(
            CHECK,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        answers = [check.future(health_pb2.HealthCheckRequest()) for _ in range(8)]
        statuses = {future.result(timeout=10).status for future in answers}
        response, call = check.with_call(health_pb2.HealthCheckRequest(), timeout=10)
    assert statuses == {health_pb2.HealthCheckResponse.SERVING}
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    assert call.code() == grpc.StatusCode.OK
    assert sum(n for s in servers for n in s.peers.values()) == 9
    assert len({p for s in servers for p in s.peers}) == 4
