"""The edge of every RPC: request id, envelope errors, logs and metrics.

Servicer methods are decorated with ``@unary(ResponseType)``. The decorator
binds the request id, runs the method, and turns an ``AppError`` into the
response's ``error`` field by looking up its code; any other exception becomes
ERROR_CODE_INTERNAL with a generic message, its text and stack kept in the log.
The status of the call stays OK: gRPC status codes belong to the transport.

Server-streaming and bidirectional methods are generators decorated with
``@streaming(ResponseType)``: the same discipline, applied to each step of the
generator. An error becomes one last response whose ``error`` is set, then the
stream ends; a client going away counts as CANCELLED, not as a failure.

Codes cross between ``errors.Code`` and the wire's ``ErrorCode`` by name, through
one table built at import; ``error_from_message`` turns another service's Error
back into the exception class its callers catch.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, NoReturn, Protocol, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from loansuite.common.v1 import error_pb2

from services.shared import context, tracing
from services.shared.aio_handlers import CallAborted, CallStatus, aborts_by_raising
from services.shared.call_metrics import CallMetrics, GrpcType, Outcome, for_method
from services.shared.errors import AppError, Code, FieldViolation, error_for
from services.shared.logs import log_call

__all__ = [
    "Envelope",
    "abort_with_error",
    "code_from_proto",
    "code_to_proto",
    "error_from_message",
    "error_message",
    "internal_error",
    "set_status",
    "status_of",
    "streaming",
    "unary",
]

log = logging.getLogger("loansuite.rpc")


class Envelope(Protocol):
    """A response with ``oneof result { <payload>; Error error; }``."""

    def HasField(self, field_name: Any, /) -> bool: ...

    @property
    def error(self) -> error_pb2.Error: ...


Req = TypeVar("Req")
Resp = TypeVar("Resp", bound=Envelope)
Self_ = TypeVar("Self_")
Handler = Callable[[Self_, Req, grpc.ServicerContext], Resp]
# Req is one message (server streaming) or an iterator of them (bidirectional).
StreamHandler = Callable[[Self_, Req, grpc.ServicerContext], Iterator[Resp]]

_WIRE_PREFIX = "ERROR_CODE_"
# By name, so a renumbering on either side cannot pair two different codes; a Code
# without a wire name fails here, at import, not on the first error of that kind.
_TO_WIRE: Mapping[Code, error_pb2.ErrorCode.ValueType] = MappingProxyType(
    {code: error_pb2.ErrorCode.Value(_WIRE_PREFIX + code.name) for code in Code}
)
_FROM_WIRE: Mapping[error_pb2.ErrorCode.ValueType, Code] = MappingProxyType(
    {wire: code for code, wire in _TO_WIRE.items()}
)


def code_to_proto(code: Code) -> error_pb2.ErrorCode.ValueType:
    """The wire ErrorCode of a Code."""
    return _TO_WIRE[code]


def code_from_proto(code: error_pb2.ErrorCode.ValueType) -> Code:
    """The Code of a wire ErrorCode; UNSPECIFIED or one newer than this build is INTERNAL."""
    # Neither names an outcome this build could act on; raising instead would turn the
    # sender's answer into an unexpected failure here.
    return _FROM_WIRE.get(code, Code.INTERNAL)


def error_message(exc: AppError, request_id: str) -> error_pb2.Error:
    """The envelope Error for an expected outcome."""
    return error_pb2.Error(
        code=code_to_proto(exc.code),
        reason=exc.reason,
        message=exc.message,
        field_violations=[
            error_pb2.FieldViolation(field=v.field, description=v.description)
            for v in exc.field_violations
        ],
        request_id=request_id,
    )


def error_from_message(error: error_pb2.Error) -> AppError:
    """Another service's Error as the exception its callers catch: error_message's inverse."""
    return error_for(
        code_from_proto(error.code),
        error.message,
        reason=error.reason,
        field_violations=[FieldViolation(v.field, v.description) for v in error.field_violations],
    )


def abort_with_error(ctx: grpc.ServicerContext, exc: AppError, request_id: str) -> NoReturn:
    """End the call with the gRPC status of exc's code, its Error as a google.rpc.Status detail.

    An error with a retry delay also carries a google.rpc.RetryInfo detail.
    """
    status = status_of(exc, request_id)
    if aborts_by_raising(ctx):  # grpc.aio's own context: the coroutine around us aborts
        raise CallAborted(status)
    ctx.abort_with_status(status)
    raise AssertionError("abort returned")  # grpc's abort raises; NoReturn must hold


def set_status(ctx: grpc.ServicerContext, status: grpc.Status) -> None:
    """Give the call the status it ends with when its handler returns."""
    ctx.set_code(status.code)
    ctx.set_details(status.details)
    ctx.set_trailing_metadata(status.trailing_metadata)


def _aborts_by_returning(ctx: grpc.ServicerContext) -> bool:
    # grpc.aio's context for a handler it runs on its own thread pool (one that reads a
    # request stream): its abort waits for the event loop to send the status, and for a
    # call that a stop has cancelled that never comes.
    return not hasattr(ctx, "abort_with_status")


def status_of(exc: AppError, request_id: str) -> grpc.Status:
    """The gRPC status that answers exc: its code, the Error (and RetryInfo) as details."""
    detail = any_pb2.Any()
    detail.Pack(error_message(exc, request_id))
    details = [detail]
    if exc.retry_delay is not None:
        retry = any_pb2.Any()
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=_duration(exc.retry_delay)))
        details.append(retry)
    status = status_pb2.Status(
        code=grpc.StatusCode[exc.code.name].value[0], message=exc.message, details=details
    )
    rich = rpc_status.to_status(status)
    trailing = (*rich.trailing_metadata, (context.REQUEST_ID_HEADER, request_id))
    return CallStatus(rich.code, rich.details, trailing)


def _duration(delay: timedelta) -> duration_pb2.Duration:
    """A delay as a Duration, rounded up to a whole second: never earlier than allowed."""
    duration = duration_pb2.Duration()
    duration.FromSeconds(max(0, math.ceil(delay.total_seconds())))
    return duration


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
        @functools.wraps(method)
        def handler(self: Self_, request: Req, ctx: grpc.ServicerContext) -> Resp:
            metadata = ctx.invocation_metadata()
            request_id = context.request_id_from(metadata)
            token = context.set_request_id(request_id, ctx)
            rpc = for_method(self, method, "unary")
            span = tracing.start_call_span(rpc.service, rpc.method, metadata)
            current = span.enter()
            started = time.perf_counter()
            rpc.started()
            outcome: Outcome = ("UNKNOWN", None)
            try:
                response = _call(method, self, request, ctx, response_type, request_id)
                ctx.set_trailing_metadata(((context.REQUEST_ID_HEADER, request_id),))
                outcome = _record(rpc, response, started)
                return response
            except AppError as exc:  # as_status: answered with a real gRPC status
                outcome = _log_call(
                    rpc, exc.code.name, started, grpc_code=exc.code.name, reason=exc.reason
                )
                abort_with_error(ctx, exc, request_id)
            except asyncio.CancelledError:  # grpc.aio: the client went away while it waited
                outcome = _log_call(rpc, "CANCELLED", started, grpc_code="CANCELLED")
                raise
            finally:  # after the call's log line, which carries the request and trace ids
                span.end(*outcome)
                span.leave(current)
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
        if exc.as_status:
            raise
        return response_type(error=error_message(exc, request_id))
    except Exception:
        log.exception("unexpected failure")
        return response_type(error=internal_error(request_id))


def _record(rpc: CallMetrics, response: Envelope, started: float) -> Outcome:
    """Classify the call by its envelope code, so an error never counts as a success."""
    if response.HasField("error"):
        error = response.error
        return _log_call(rpc, code_from_proto(error.code).name, started, reason=error.reason)
    return _log_call(rpc, "OK", started)


def _log_call(
    rpc: CallMetrics,
    outcome: str,
    started: float,
    *,
    grpc_code: str = "OK",
    reason: str | None = None,
) -> Outcome:
    """Count and log a finished call: outcome is the Error's code (then reason is its
    reason) or, without an Error, the gRPC code. Returns what the call came to."""
    elapsed = time.perf_counter() - started
    error = None if reason is None else (outcome, reason)
    rpc.handled(grpc_code, elapsed, error)
    level = logging.ERROR if outcome == "INTERNAL" else logging.INFO
    log_call(log, level, rpc.name, outcome, round(elapsed * 1000, 3))
    return grpc_code, error


def streaming(
    response_type: Callable[..., Resp],
) -> Callable[[StreamHandler[Self_, Req, Resp]], StreamHandler[Self_, Req, Resp]]:
    """Wrap a server-streaming or bidirectional servicer method with the envelope discipline."""

    def decorate(method: StreamHandler[Self_, Req, Resp]) -> StreamHandler[Self_, Req, Resp]:
        @functools.wraps(method)
        def handler(self: Self_, request: Req, ctx: grpc.ServicerContext) -> Iterator[Resp]:
            # A bidirectional method gets an iterator of requests, not one message.
            kind: GrpcType = "server_stream" if hasattr(request, "DESCRIPTOR") else "bidi_stream"
            call = _StreamCall(for_method(self, method, kind), ctx)
            ctx.set_trailing_metadata(((context.REQUEST_ID_HEADER, call.request_id),))
            responses = method(self, request, ctx)
            try:
                while (response := call.step(responses, response_type)) is not None:
                    yield response
            except GeneratorExit:
                call.outcome = call.grpc_code = "CANCELLED"  # the client went away meanwhile
                raise
            finally:
                call.finish(responses)

        return handler

    return decorate


def _cancelled(ctx: grpc.ServicerContext) -> bool:
    # grpc.aio's context for synchronous handlers has no is_active(); there a
    # cancelled read is logged like any other failure.
    is_active = getattr(ctx, "is_active", None)
    return is_active is not None and not is_active()


class _StreamCall:
    """One streaming call: its request id, and its outcome so far (the first error wins).

    An error with ``as_status`` (the server is stopping, a quota) ends the stream with
    that gRPC status and the Error as its detail, so clients' retry logic reconnects.
    """

    def __init__(self, rpc: CallMetrics, ctx: grpc.ServicerContext) -> None:
        metadata = ctx.invocation_metadata()
        self.rpc = rpc
        self.request_id = context.request_id_from(metadata)
        self.span = tracing.start_call_span(rpc.service, rpc.method, metadata)
        self.outcome = self.grpc_code = "OK"
        self.reason: str | None = None
        self._ctx = ctx
        self._finished = False
        self._started = time.perf_counter()
        rpc.started()

    def step(self, responses: Iterator[Resp], response_type: Callable[..., Resp]) -> Resp | None:
        """Run the method to its next response, with the request id bound; None when it ends."""
        if self._finished:
            return None
        token = context.set_request_id(self.request_id, self._ctx)
        current = self.span.enter()
        try:
            return next(responses)
        except StopIteration:
            self._finished = True
            if _cancelled(self._ctx):  # the method ended because the client went away
                self.outcome = self.grpc_code = "CANCELLED"
            return None
        except AppError as exc:
            response = self._fail(response_type(error=error_message(exc, self.request_id)), exc)
            if exc.as_status:
                self.grpc_code = exc.code.name
                if _aborts_by_returning(self._ctx):
                    set_status(self._ctx, status_of(exc, self.request_id))
                    return None
                abort_with_error(self._ctx, exc, self.request_id)
            return response
        except Exception:
            if _cancelled(self._ctx):
                # Reading a request of a cancelled call raises; that is no failure of ours.
                self.outcome = self.grpc_code = "CANCELLED"
                self._finished = True
                return None
            log.exception("unexpected failure")
            return self._fail(response_type(error=internal_error(self.request_id)), AppError())
        finally:
            self.span.leave(current)
            context.reset_request_id(token)

    def _fail(self, response: Resp, exc: AppError) -> Resp:
        self.outcome, self.reason, self._finished = exc.code.name, exc.reason, True
        return response

    def finish(self, responses: Iterator[Resp]) -> None:
        """Close the method's generator (running its cleanup), then log and count the call."""
        token = context.set_request_id(self.request_id)
        current = self.span.enter()
        outcome: Outcome = ("UNKNOWN", None)
        try:
            close = getattr(responses, "close", None)
            if close is not None:
                close()
            outcome = _log_call(
                self.rpc, self.outcome, self._started, grpc_code=self.grpc_code, reason=self.reason
            )
        finally:
            self.span.end(*outcome)
            self.span.leave(current)
            context.reset_request_id(token)
