"""grpc.aio with native handlers: the servicers stay synchronous, the calls do not wait for
a thread unless they must.

grpc.aio runs a synchronous handler on its thread pool: every call then crosses from the
event loop to a pool thread and back, and under load those threads contend for the GIL.
Here each unary handler is registered as a coroutine instead. A call that a service
places on the loop (its caller already known, so nothing it does waits on another
service) runs on the event loop itself; a write placed there runs in a greenlet,
suspended while it waits for its group commit (suspend.py), so the loop serves other
calls meanwhile. Any other call goes to the thread pool.

A server-streaming handler (a synchronous generator) is stepped on the thread pool, one
response at a time, and ends when its call does: grpc.aio's own bridge hands responses
over through a queue of one, and a producer whose call was cancelled with a response
still queued waits forever, holding its thread past the server's stop. The handler sees
a context with the thread-pool server's ``add_callback`` and ``is_active``. A handler that
reads a request stream runs on the pool as well, reading through ``_Requests``, which
gives up once its call ends (see there).

The request is decoded here, so an undecodable one gets the INTERNAL status with the text
the thread-pool server gives, not an UNKNOWN with a stack trace in the log.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from concurrent import futures
from typing import TYPE_CHECKING, Any, Literal

import grpc

from services.shared.suspend import run_suspendable

__all__ = [
    "CallAborted",
    "CallMetadata",
    "CallStatus",
    "NativeHandlers",
    "Placement",
    "Placer",
]

CallMetadata = Sequence[tuple[str, str | bytes]]
# Where a unary call runs: on the thread pool; on the event loop; or on the loop in a
# greenlet, suspended where it waits for its group commit (a write). The greenlet costs
# a few microseconds more, so a call that never waits runs on the loop as it is.
Placement = Literal["pool", "loop", "suspendable"]
# (method name as in "/package.Service/Method", invocation metadata) -> where it runs
Placer = Callable[[str, CallMetadata], Placement]

UNDECODABLE = "Exception deserializing request!"
if TYPE_CHECKING:  # generic only in the stubs
    MethodHandler = grpc.RpcMethodHandler[Any, Any]
    GenericHandler = grpc.GenericRpcHandler[Any, Any]
else:
    MethodHandler, GenericHandler = grpc.RpcMethodHandler, grpc.GenericRpcHandler


class CallStatus(grpc.Status):
    """A grpc.Status to end a call with: code, details and trailing metadata."""

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str,
        trailing: tuple[tuple[str, str | bytes], ...] = (),
    ) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing


class CallAborted(Exception):
    """Raised by a handler run as a coroutine's body to end its call with status.

    grpc.aio's ``abort`` is a coroutine, which a synchronous handler cannot await; the
    coroutine around it does.
    """

    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details)
        self.status = status


def aborts_by_raising(ctx: Any) -> bool:
    """Whether ctx is grpc.aio's own context, whose abort must be awaited."""
    abort = getattr(ctx, "abort_with_status", None)
    return abort is not None and inspect.iscoroutinefunction(abort)


class NativeHandlers:
    """A grpc.aio server as generated ``add_*_to_server`` functions see it: each unary
    handler they add is wrapped as a coroutine, run where ``place`` says."""

    def __init__(self, server: Any, pool: futures.Executor, place: Placer | None = None) -> None:
        self._server = server
        self._pool = pool
        self._place = place

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, MethodHandler]
    ) -> None:
        # Served as a generic handler, not registered with grpc.aio: it keeps a pending
        # request per registered method and takes each call through an asyncio.wait over
        # all of them, 18 µs for loans' 39 against 5 µs for the one generic request
        # (docs/BENCHMARKS.md).
        natives = {}
        for name, handler in handlers.items():
            method = f"/{service}/{name}"
            natives[method] = self._native(method, handler)
        self._server.add_generic_rpc_handlers((_Methods(service, natives),))

    def add_generic_rpc_handlers(self, handlers: Sequence[GenericHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_Generic(h, self._native) for h in handlers))

    def _native(self, method: str, handler: MethodHandler) -> MethodHandler:
        if handler.request_streaming:
            return self._native_request_stream(handler)
        if handler.response_streaming:
            return self._native_stream(handler)
        if inspect.iscoroutinefunction(handler.unary_unary):
            return handler
        behavior: Callable[[Any, Any], Any] | None = handler.unary_unary
        decode = handler.request_deserializer
        assert behavior is not None  # neither side streams
        place, pool = self._place, self._pool

        async def serve(data: bytes, ctx: Any) -> Any:
            request = await _decoded(decode, data, ctx)
            try:
                placement = "pool" if place is None else place(method, ctx.invocation_metadata())
                if placement == "loop":
                    return behavior(request, ctx)
                if placement == "suspendable":
                    return await run_suspendable(behavior, request, ctx)
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(pool, behavior, request, ctx)
            except CallAborted as aborted:
                await _abort(ctx, aborted.status)

        return grpc.unary_unary_rpc_method_handler(
            serve, request_deserializer=None, response_serializer=handler.response_serializer
        )

    def _native_stream(self, handler: MethodHandler) -> MethodHandler:
        behavior: Callable[[Any, Any], Any] | None = handler.unary_stream
        assert behavior is not None
        if inspect.isasyncgenfunction(behavior):
            return handler
        decode, pool = handler.request_deserializer, self._pool

        async def serve(data: bytes, ctx: Any) -> AsyncIterator[Any]:
            request = await _decoded(decode, data, ctx)
            responses = behavior(request, _PoolContext(ctx, asyncio.get_running_loop()))
            async for response in _stepped(responses, pool, ctx):
                yield response

        return grpc.unary_stream_rpc_method_handler(
            serve, request_deserializer=None, response_serializer=handler.response_serializer
        )

    def _native_request_stream(self, handler: MethodHandler) -> MethodHandler:
        """A handler that reads a request stream, on the pool; it reads through _Requests."""
        behavior: Callable[[Any, Any], Any] | None = handler.stream_stream or handler.stream_unary
        assert behavior is not None
        if inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior):
            return handler
        decode, pool, encode = handler.request_deserializer, self._pool, handler.response_serializer

        if not handler.response_streaming:

            async def serve_one(messages: AsyncIterator[bytes], ctx: Any) -> Any:
                loop = asyncio.get_running_loop()
                requests = _Requests(messages, decode, loop)
                try:
                    return await loop.run_in_executor(
                        pool, behavior, requests, _PoolContext(ctx, loop)
                    )
                except CallAborted as aborted:
                    await _abort(ctx, aborted.status)
                finally:
                    requests.end()

            return grpc.stream_unary_rpc_method_handler(
                serve_one, request_deserializer=None, response_serializer=encode
            )

        async def serve(messages: AsyncIterator[bytes], ctx: Any) -> AsyncIterator[Any]:
            loop = asyncio.get_running_loop()
            requests = _Requests(messages, decode, loop)
            responses = behavior(requests, _PoolContext(ctx, loop))
            # However the call ends, a read under way gives up, so the step waiting on it
            # returns.
            async for response in _stepped(responses, pool, ctx, requests.end):
                yield response

        return grpc.stream_stream_rpc_method_handler(
            serve, request_deserializer=None, response_serializer=encode
        )


_END = object()


async def _stepped(
    responses: Generator[Any, None, None],
    pool: futures.Executor,
    ctx: Any,
    on_end: Callable[[], None] | None = None,
) -> AsyncIterator[Any]:
    """A synchronous handler's responses, each produced on pool; a CallAborted it raises
    ends the call with its status."""
    step = pool.submit(_next, responses)
    try:
        while (response := await asyncio.wrap_future(step)) is not _END:
            yield response
            step = pool.submit(_next, responses)
    except CallAborted as aborted:
        await _abort(ctx, aborted.status)
    finally:
        if on_end is not None:
            on_end()
        # Ended early (cancelled, the client gone) the generator is closed, running its
        # cleanup, once the step under way returns; never while it runs.
        step.add_done_callback(lambda _: responses.close())


class _Requests:
    """A call's request stream as a handler on a pool thread reads it.

    Each ``next`` waits for the loop to read the next message. Once the call ends
    (``end``, from the coroutine that serves it, however it ends) a read under way and
    any later one raise ``grpc.RpcError``, as the thread-pool server's request iterator
    does for a cancelled call: no pool thread waits for a loop that has moved on, or
    stopped. grpc.aio's own bridge left such a thread waiting when a peer vanished
    mid-stream, and the process could not exit.
    """

    def __init__(
        self,
        messages: AsyncIterator[bytes],
        decode: Callable[[bytes], Any] | None,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._messages = messages
        self._decode = decode
        self._loop = loop
        self._lock = threading.Lock()
        self._ended = False
        self._reading: futures.Future[bytes] | None = None

    def __iter__(self) -> _Requests:
        return self

    def __next__(self) -> Any:
        with self._lock:
            if self._ended:
                raise grpc.RpcError()
            reading = self._reading = asyncio.run_coroutine_threadsafe(
                _read(self._messages), self._loop
            )
        try:
            data = reading.result()
        except futures.CancelledError:
            raise grpc.RpcError() from None
        if data is _END:
            raise StopIteration
        if self._decode is None:
            return data
        try:
            return self._decode(data)
        except Exception:
            raise CallAborted(CallStatus(grpc.StatusCode.INTERNAL, UNDECODABLE)) from None

    def end(self) -> None:
        with self._lock:
            self._ended = True
            if self._reading is not None:
                self._reading.cancel()


async def _read(messages: AsyncIterator[bytes]) -> Any:
    return await anext(messages, _END)


async def _decoded(decode: Callable[[bytes], Any] | None, data: bytes, ctx: Any) -> Any:
    """The request, or the call ended with the thread-pool server's INTERNAL."""
    try:
        return decode(data) if decode is not None else data
    except Exception:
        await ctx.abort(grpc.StatusCode.INTERNAL, UNDECODABLE)


async def _abort(ctx: Any, status: grpc.Status) -> None:
    await ctx.abort(status.code, status.details, status.trailing_metadata)


def _next(responses: Iterator[Any]) -> Any:
    return next(responses, _END)


class _PoolContext:
    """grpc.aio's context as a handler on a pool thread sees it: the thread-pool server's
    ``add_callback`` and ``is_active``, and ``send_initial_metadata`` without an await."""

    def __init__(self, ctx: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._ctx = ctx
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Call callback when the call ends; False, as on the thread pool, if it has."""
        if self._ctx.done():
            return False
        self._ctx.add_done_callback(lambda _ctx: callback())
        return True

    def is_active(self) -> bool:
        return not self._ctx.done()

    def send_initial_metadata(self, metadata: CallMetadata) -> None:
        sent = asyncio.run_coroutine_threadsafe(
            self._ctx.send_initial_metadata(metadata), self._loop
        )
        sent.result()


class _Methods(GenericHandler):
    """One service's methods, made native once, found by their full name."""

    def __init__(self, service: str, natives: dict[str, MethodHandler]) -> None:
        self._service = service
        self._natives = natives

    def service_name(self) -> str:
        return self._service

    def service(self, details: grpc.HandlerCallDetails) -> MethodHandler | None:
        return self._natives.get(details.method)


# Methods whose native handler a _Generic keeps; past it, it starts again (a generic
# handler that answers any name must not grow it for ever).
_GENERIC_KEPT = 1024


class _Generic(GenericHandler):
    """A generic handler whose unary handlers come out native, each made once."""

    def __init__(
        self,
        wrapped: GenericHandler,
        native: Callable[[str, MethodHandler], MethodHandler],
    ) -> None:
        self._wrapped = wrapped
        self._to_native = native
        # method -> (the handler the wrapped one gave, its native handler)
        self._made: dict[str, tuple[MethodHandler, MethodHandler]] = {}

    def service_name(self) -> str | None:
        name = getattr(self._wrapped, "service_name", None)
        return name() if name is not None else None

    def service(self, details: grpc.HandlerCallDetails) -> MethodHandler | None:
        handler = self._wrapped.service(details)
        if handler is None:
            return None
        method = details.method
        made = self._made.get(method)
        if made is not None and made[0] is handler:
            return made[1]
        native = self._to_native(method, handler)
        if len(self._made) >= _GENERIC_KEPT:
            self._made.clear()
        self._made[method] = (handler, native)
        return native
