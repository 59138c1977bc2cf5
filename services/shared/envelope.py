"""The edge of every RPC: request id, envelope errors, logs and metrics.

Servicer methods are decorated with ``@unary(ResponseType)``. The decorator
binds the request id, runs the method, and turns an ``AppError`` into the
response's ``error`` field by looking up its code; any other exception becomes
ERROR_CODE_INTERNAL with a generic message, its text and stack kept in the log.
The status of the call stays OK: gRPC status codes belong to the transport.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import grpc
from loansuite.common.v1 import error_pb2

from services.shared import context
from services.shared.errors import AppError, Code
from services.shared.metrics import calls

__all__ = ["error_message", "internal_error", "unary"]

log = logging.getLogger("loansuite.rpc")


class _Envelope(Protocol):
    def HasField(self, field_name: Any, /) -> bool: ...

    @property
    def error(self) -> error_pb2.Error: ...


Req = TypeVar("Req")
Resp = TypeVar("Resp", bound=_Envelope)
Self_ = TypeVar("Self_")
Handler = Callable[[Self_, Req, grpc.ServicerContext], Resp]


def error_message(exc: AppError, request_id: str) -> error_pb2.Error:
    """The envelope Error for an expected outcome."""
    return error_pb2.Error(
        code=error_pb2.ErrorCode.ValueType(exc.code.value),
        reason=exc.reason,
        message=exc.message,
        field_violations=[
            error_pb2.FieldViolation(field=v.field, description=v.description)
            for v in exc.field_violations
        ],
        request_id=request_id,
    )


def internal_error(request_id: str) -> error_pb2.Error:
    """The envelope Error for an unexpected failure: nothing internal leaks."""
    return error_pb2.Error(
        code=error_pb2.ERROR_CODE_INTERNAL,
        reason="INTERNAL",
        message="internal error; quote the request id when reporting it",
        request_id=request_id,
    )


def unary(
    response_type: Callable[..., Resp],
) -> Callable[[Handler[Self_, Req, Resp]], Handler[Self_, Req, Resp]]:
    """Wrap a unary servicer method with the envelope discipline."""

    def decorate(method: Handler[Self_, Req, Resp]) -> Handler[Self_, Req, Resp]:
        name = method.__qualname__

        @functools.wraps(method)
        def handler(self: Self_, request: Req, ctx: grpc.ServicerContext) -> Resp:
            request_id = context.request_id_from(ctx.invocation_metadata())
            token = context.set_request_id(request_id)
            started = time.perf_counter()
            try:
                response = _call(method, self, request, ctx, response_type, request_id)
                ctx.set_trailing_metadata(((context.REQUEST_ID_HEADER, request_id),))
                _record(name, response, started)
                return response
            finally:
                context.reset_request_id(token)

        return handler

    return decorate


def _call(
    method: Handler[Self_, Req, Resp],
    self: Self_,
    request: Req,
    ctx: grpc.ServicerContext,
    response_type: Callable[..., Resp],
    request_id: str,
) -> Resp:
    try:
        return method(self, request, ctx)
    except AppError as exc:
        return response_type(error=error_message(exc, request_id))
    except Exception:
        log.exception("unexpected failure")
        return response_type(error=internal_error(request_id))


def _record(name: str, response: _Envelope, started: float) -> None:
    """Classify the call by its envelope code, so an error never counts as a success."""
    outcome = Code(response.error.code).name if response.HasField("error") else "OK"
    calls.record(name, outcome)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
    level = logging.ERROR if outcome == "INTERNAL" else logging.INFO
    log.log(level, "call", extra={"rpc": name, "outcome": outcome, "elapsed_ms": elapsed_ms})
