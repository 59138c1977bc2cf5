"""The envelope discipline for bidirectional-stream servicer methods.

``@bidi_stream(ResponseType)`` does for a streaming method what
``services.shared.envelope.unary`` does for a unary one: it binds the request
id while the method runs, turns an ``AppError`` into one response whose
``error`` is set, turns any other exception into ERROR_CODE_INTERNAL without
leaking its text, ends the stream after an error, and logs and counts the
call by its outcome. The gRPC status stays OK.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc

from services.shared import context
from services.shared.envelope import error_message, internal_error
from services.shared.errors import AppError, Code
from services.shared.metrics import calls

__all__ = ["bidi_stream"]

log = logging.getLogger("loansuite.rpc")

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Self_ = TypeVar("Self_")
StreamHandler = Callable[[Self_, Iterator[Req], grpc.ServicerContext], Iterator[Resp]]


def bidi_stream(
    response_type: Callable[..., Resp],
) -> Callable[[StreamHandler[Self_, Req, Resp]], StreamHandler[Self_, Req, Resp]]:
    """Wrap a stream-stream servicer method with the envelope discipline."""

    def decorate(method: StreamHandler[Self_, Req, Resp]) -> StreamHandler[Self_, Req, Resp]:
        name = method.__qualname__

        @functools.wraps(method)
        def handler(
            self: Self_, requests: Iterator[Req], ctx: grpc.ServicerContext
        ) -> Iterator[Resp]:
            call = _Call(name, context.request_id_from(ctx.invocation_metadata()), ctx)
            ctx.set_trailing_metadata(((context.REQUEST_ID_HEADER, call.request_id),))
            responses = method(self, requests, ctx)
            try:
                while (response := call.step(responses, response_type)) is not None:
                    yield response
            except GeneratorExit:
                call.outcome = "CANCELLED"  # the client went away between responses
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


class _Call:
    """One streaming call: its request id, and its outcome so far (the first error wins)."""

    def __init__(self, name: str, request_id: str, ctx: grpc.ServicerContext) -> None:
        self.name = name
        self.request_id = request_id
        self.outcome = "OK"
        self._ctx = ctx
        self._finished = False
        self._started = time.perf_counter()

    def step(self, responses: Iterator[Resp], response_type: Callable[..., Resp]) -> Resp | None:
        """Run the method to its next response, with the request id bound; None when it ends."""
        if self._finished:
            return None
        token = context.set_request_id(self.request_id)
        try:
            return next(responses)
        except StopIteration:
            self._finished = True
            if _cancelled(self._ctx):  # the requests ended because the client went away
                self.outcome = "CANCELLED"
            return None
        except AppError as exc:
            return self._fail(response_type(error=error_message(exc, self.request_id)), exc.code)
        except Exception:
            if _cancelled(self._ctx):
                # Reading a request of a cancelled call raises; that is no failure of ours.
                self.outcome, self._finished = "CANCELLED", True
                return None
            log.exception("unexpected failure")
            return self._fail(response_type(error=internal_error(self.request_id)), Code.INTERNAL)
        finally:
            context.reset_request_id(token)

    def _fail(self, response: Resp, code: Code) -> Resp:
        self.outcome, self._finished = code.name, True
        return response

    def finish(self, responses: Iterator[Resp]) -> None:
        """Close the method's generator, then log and count the call by its outcome."""
        token = context.set_request_id(self.request_id)
        try:
            close = getattr(responses, "close", None)
            if close is not None:
                close()
            calls.record(self.name, self.outcome)
            elapsed_ms = round((time.perf_counter() - self._started) * 1000, 3)
            level = logging.ERROR if self.outcome == "INTERNAL" else logging.INFO
            log.log(
                level,
                "call",
                extra={"rpc": self.name, "outcome": self.outcome, "elapsed_ms": elapsed_ms},
            )
        finally:
            context.reset_request_id(token)
