"""A server refuses calls past its concurrency bound instead of queueing them without end."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import TypeAlias

import grpc
import pytest

from services.shared.server import Registration, Server, create_server

METHOD = "/loansuite.test.Slow/Wait"
# Raw bytes both ways, no serializers; subscripted for the type checker only.
Call: TypeAlias = "grpc.UnaryUnaryMultiCallable[bytes, bytes]"


class Gate:
    """A unary method that answers only once the gate opens."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()

    def wait(self, request: bytes, _context: grpc.ServicerContext) -> bytes:
        self.entered.set()
        self.opened.wait(10)
        return request

    def register(self, server: grpc.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(self.wait)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("loansuite.test.Slow", {"Wait": handler}),)
        )


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.opened.set()


@pytest.fixture(params=["thread", "aio"])
def server(request: pytest.FixtureRequest, gate: Gate) -> Iterator[Server]:
    running = create_server(
        [Registration("loansuite.test.Slow", gate.register)],
        "127.0.0.1:0",
        max_workers=1,
        model=request.param,
        max_concurrent_rpcs=2,
    )
    yield running
    gate.opened.set()
    running.stop(1)


def test_calls_past_the_bound_are_refused_while_those_within_it_complete(
    server: Server, gate: Gate
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call: Call = channel.unary_unary(METHOD, None, None)
        with futures.ThreadPoolExecutor(2) as callers:
            running = callers.submit(call, b"first", timeout=10)
            assert gate.entered.wait(5)  # holds the only thread
            queued = callers.submit(call, b"second", timeout=10)
            refused = _refused(call)
            gate.opened.set()
            answers = (running.result(), queued.result())

        assert refused == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert answers == (b"first", b"second")
        assert call(b"after", timeout=5) == b"after"  # admitted again once there is room


def _refused(call: Call) -> grpc.StatusCode | None:
    """The status of a third call while two are in: retried until the second has arrived."""
    for _ in range(50):
        try:
            call(b"third", timeout=0.2)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                return exc.code()
    return None
