"""grpc.aio with native handlers: which calls run on the event loop, and how they end.

A real grpc.aio server on a real port, serving raw bytes: each handler says which thread
ran it, or ends its call with an error that must reach the client as a gRPC status.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_status import rpc_status
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1.audit_service_pb2_grpc import (
    AuditServiceStub,
    add_AuditServiceServicer_to_server,
)
from loansuite.common.v1 import error_pb2

from services.shared.aio_handlers import GenericHandler, Placement, _Generic
from services.shared.envelope import abort_with_error, unary
from services.shared.errors import ServerStoppingError
from services.shared.metrics import calls
from services.shared.server import Registration, Server, create_server
from services.shared.suspend import wait_for
from tests.shared.envelope_support import ScriptedAudit
from tests.support import eventually, free_port

SERVICE = "loansuite.probe.v1.Probe"
# Added only as registered methods, as a hand-written add function may.
REGISTERED = "loansuite.probe.v1.Registered"
AUDIT_SERVICE = audit_pb.DESCRIPTOR.services_by_name["AuditService"].full_name
INLINE = ("x-probe-inline", "yes")
SUSPENDABLE = ("x-probe-inline", "suspendable")


def _where(_request: bytes, _ctx: Any) -> bytes:
    return threading.current_thread().name.encode()


def _refuse(_request: bytes, ctx: Any) -> bytes:
    abort_with_error(ctx, ServerStoppingError(), "probe-1")


# What each Echo call's handler saw of its request stream, and the threads it ran on.
ECHOED: list[list[str]] = []
ECHO_THREADS: set[threading.Thread] = set()


def _echo(requests: Iterator[str], _ctx: Any) -> Iterator[bytes]:
    """Answers each request with its text reversed, on whichever thread reads them."""
    seen: list[str] = []
    ECHOED.append(seen)
    ECHO_THREADS.add(threading.current_thread())
    for text in requests:
        ECHO_THREADS.add(threading.current_thread())
        seen.append(text)
        yield text[::-1].encode()
    seen.append("<end of stream>")


def _count(requests: Iterator[str], _ctx: Any) -> bytes:
    return str(sum(1 for _ in requests)).encode()


def _add(server: Any) -> None:
    handlers = {
        "Where": grpc.unary_unary_rpc_method_handler(_where),
        "Refuse": grpc.unary_unary_rpc_method_handler(_refuse),
        "Echo": grpc.stream_stream_rpc_method_handler(_echo, request_deserializer=bytes.decode),
        "Count": grpc.stream_unary_rpc_method_handler(_count, request_deserializer=bytes.decode),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


def _add_registered(server: Any) -> None:
    handlers = {"Where": grpc.unary_unary_rpc_method_handler(_where)}
    server.add_registered_method_handlers(REGISTERED, handlers)


def _place(method: str, metadata: Any) -> Placement:
    assert method.startswith((f"/{SERVICE}/", f"/{REGISTERED}/"))
    if SUSPENDABLE in tuple(metadata):
        return "suspendable"
    return "loop" if INLINE in tuple(metadata) else "pool"


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    registrations = [
        Registration(SERVICE, _add, _place),
        Registration(REGISTERED, _add_registered, _place),
    ]
    server: Server = create_server(registrations, f"127.0.0.1:{free_port()}", model="aio")
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as opened:
        yield opened
    server.stop(0)


@pytest.mark.parametrize("metadata", [INLINE, SUSPENDABLE], ids=["loop", "suspendable"])
def test_a_call_placed_on_the_loop_runs_there(
    channel: grpc.Channel, metadata: tuple[str, str]
) -> None:
    where = channel.unary_unary(f"/{SERVICE}/Where", None, None)
    assert where(b"", metadata=(metadata,), timeout=5) == b"aio"


def test_any_other_unary_call_runs_on_the_thread_pool(channel: grpc.Channel) -> None:
    where = channel.unary_unary(f"/{SERVICE}/Where", None, None)
    assert where(b"", timeout=5).startswith(b"rpc")


def test_registered_methods_are_served_and_placed_as_generic_ones(
    channel: grpc.Channel,
) -> None:
    where = channel.unary_unary(f"/{REGISTERED}/Where", None, None)
    assert where(b"", metadata=(INLINE,), timeout=5) == b"aio"
    assert where(b"", timeout=5).startswith(b"rpc")
    missing = channel.unary_unary(f"/{REGISTERED}/Missing", None, None)
    with pytest.raises(grpc.RpcError) as raised:
        missing(b"", timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_generic_handler_makes_each_native_handler_once() -> None:
    made: list[tuple[str, Any]] = []

    def native(method: str, handler: Any) -> Any:
        made.append((method, handler))
        return grpc.unary_unary_rpc_method_handler(handler.unary_unary)

    first = grpc.unary_unary_rpc_method_handler(_where)
    handlers = {"Where": first}
    generic = _Generic(grpc.method_handlers_generic_handler(SERVICE, handlers), native)
    details = _Details(f"/{SERVICE}/Where")
    assert generic.service(details) is generic.service(details)
    assert made == [(details.method, first)]
    # A wrapped handler that answers with another handler gets that one made native.
    other = grpc.unary_unary_rpc_method_handler(_refuse)
    generic = _Generic(_Answering(handlers), native)
    made.clear()
    for answer in (other, other, first):
        handlers["Where"] = answer
        assert generic.service(details).unary_unary is answer.unary_unary  # type: ignore[union-attr]
    assert made == [(details.method, other), (details.method, first)]
    assert generic.service(_Details(f"/{SERVICE}/Missing")) is None


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


class _Answering(GenericHandler):
    """Answers with whatever handlers holds for a method now."""

    def __init__(self, handlers: dict[str, Any]) -> None:
        self._handlers = handlers

    def service(self, details: grpc.HandlerCallDetails) -> Any:
        return self._handlers.get(details.method.rpartition("/")[2])


@pytest.mark.parametrize(
    "metadata", [(INLINE,), (SUSPENDABLE,), ()], ids=["loop", "suspendable", "pool"]
)
def test_an_error_with_a_status_ends_the_call_with_it_on_either_path(
    channel: grpc.Channel, metadata: tuple[tuple[str, str], ...]
) -> None:
    refuse = channel.unary_unary(f"/{SERVICE}/Refuse", None, None)
    with pytest.raises(grpc.RpcError) as raised:
        refuse(b"", metadata=metadata, timeout=5)

    call = raised.value
    assert call.code() is grpc.StatusCode.UNAVAILABLE
    status = rpc_status.from_call(call)  # type: ignore[arg-type]
    assert status is not None
    error = error_pb2.Error()
    assert status.details[0].Unpack(error)
    assert (error.reason, error.request_id) == ("SERVER_STOPPING", "probe-1")


def test_a_request_stream_is_read_on_the_pool_to_its_end(channel: grpc.Channel) -> None:
    echo = channel.stream_stream(f"/{SERVICE}/Echo", None, None)
    count = channel.stream_unary(f"/{SERVICE}/Count", None, None)

    assert list(echo(iter([b"abc", b"xy"]), timeout=5)) == [b"cba", b"yx"]
    assert ECHOED[-1] == ["abc", "xy", "<end of stream>"]
    assert count(iter([b"a", b"b", b"c"]), timeout=5) == b"3"


def test_a_request_that_does_not_decode_ends_its_stream_with_internal(
    channel: grpc.Channel,
) -> None:
    echo = channel.stream_stream(f"/{SERVICE}/Echo", None, None)
    with pytest.raises(grpc.RpcError) as raised:
        list(echo(iter([b"ok", b"\xff\xfe"]), timeout=5))
    assert raised.value.code() is grpc.StatusCode.INTERNAL
    assert raised.value.details() == "Exception deserializing request!"


def test_handlers_waiting_for_requests_leave_no_thread_behind_at_stop() -> None:
    """One client goes away mid-stream, another stays, each while its handler waits on a
    pool thread for the next request. Once stop returns, every thread that ran them has
    ended: none is left waiting for a request that cannot come (the process could not
    exit with one)."""
    registration = Registration(SERVICE, _add, _place)
    server: Server = create_server([registration], f"127.0.0.1:{free_port()}", model="aio")
    first: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    second: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    ECHO_THREADS.clear()
    stopped = False
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as opened:
            echo = opened.stream_stream(f"/{SERVICE}/Echo", None, None)
            gone = echo(iter(first.get, b""), timeout=30)
            first.put(b"one")
            assert next(iter(gone)) == b"eno"
            gone.cancel()  # this client goes away mid-stream

            stays = echo(iter(second.get, b""), timeout=30)
            second.put(b"two")
            assert next(iter(stays)) == b"owt"
            server.stop(0.2)  # the open stream ends once the grace is over
            stopped = True
    finally:
        if not stopped:
            server.stop(0)
        for requests in (first, second):
            requests.put(b"")  # the client's own request threads end too
    ran_on = [thread for thread in ECHO_THREADS if thread.name.startswith("rpc")]
    assert ran_on  # the handlers ran on the pool...
    assert not [thread for thread in ran_on if thread.is_alive()]  # ...which has ended


class _Waiting(ScriptedAudit):
    @unary(audit_pb.VerifyChainResponse)
    def VerifyChain(
        self, request: audit_pb.VerifyChainRequest, context: grpc.ServicerContext
    ) -> audit_pb.VerifyChainResponse:
        """Waits, suspended on the loop, for what never comes: until the call is cancelled."""
        wait_for(asyncio.get_running_loop().create_future())
        raise AssertionError("the wait ended without the call being cancelled")


def test_a_call_cancelled_while_it_waits_is_logged_and_counted_as_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="loansuite.rpc")
    registration = Registration(
        AUDIT_SERVICE,
        lambda server: add_AuditServiceServicer_to_server(_Waiting(), server),
        lambda _method, _metadata: "suspendable",
    )
    server: Server = create_server([registration], f"127.0.0.1:{free_port()}", model="aio")
    counted = ("_Waiting.VerifyChain", "CANCELLED")
    before = calls.snapshot().get(counted, 0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as opened:
            stub = AuditServiceStub(opened)
            with pytest.raises(grpc.RpcError) as raised:
                stub.VerifyChain(audit_pb.VerifyChainRequest(), timeout=0.5)
            assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED

            def logged() -> list[logging.LogRecord]:
                return [
                    r
                    for r in caplog.records
                    if r.getMessage() == "call" and getattr(r, "rpc", "").endswith("VerifyChain")
                ]

            eventually(lambda: len(logged()) == 1, "the cancelled call's line")
    finally:
        server.stop(0)
    assert logged()[0].outcome == "CANCELLED"  # type: ignore[attr-defined]
    assert calls.snapshot().get(counted, 0) == before + 1
