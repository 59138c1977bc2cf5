"""grpc.aio with native handlers: which calls run on the event loop, and how they end.

A real grpc.aio server on a real port, serving raw bytes: each handler says which thread
ran it, or ends its call with an error that must reach the client as a gRPC status.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_status import rpc_status
from loansuite.common.v1 import error_pb2

from services.shared.envelope import abort_with_error
from services.shared.errors import ServerStoppingError
from services.shared.server import Registration, Server, create_server
from tests.support import free_port

SERVICE = "loansuite.probe.v1.Probe"
INLINE = ("x-probe-inline", "yes")


def _where(_request: bytes, _ctx: Any) -> bytes:
    return threading.current_thread().name.encode()


def _refuse(_request: bytes, ctx: Any) -> bytes:
    abort_with_error(ctx, ServerStoppingError(), "probe-1")


def _add(server: Any) -> None:
    handlers = {
        "Where": grpc.unary_unary_rpc_method_handler(_where),
        "Refuse": grpc.unary_unary_rpc_method_handler(_refuse),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))


def _inline(method: str, metadata: Any) -> bool:
    assert method.startswith(f"/{SERVICE}/")
    return INLINE in tuple(metadata)


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    registration = Registration(SERVICE, _add, _inline)
    server: Server = create_server([registration], f"127.0.0.1:{free_port()}", model="aio")
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as opened:
        yield opened
    server.stop(0)


def test_a_call_declared_inline_runs_on_the_event_loop(channel: grpc.Channel) -> None:
    where = channel.unary_unary(f"/{SERVICE}/Where", None, None)
    assert where(b"", metadata=(INLINE,), timeout=5) == b"aio"


def test_any_other_unary_call_runs_on_the_thread_pool(channel: grpc.Channel) -> None:
    where = channel.unary_unary(f"/{SERVICE}/Where", None, None)
    assert where(b"", timeout=5).startswith(b"rpc")


@pytest.mark.parametrize("metadata", [(INLINE,), ()], ids=["inline", "pool"])
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
