"""The stock health service, except that its Watch streams end when the server stops.

grpcio's HealthServicer keeps a Watch open until the client leaves, so a server
stopping gracefully waited out its whole grace period for each watching
balancer or probe. Here ``end_watches`` ends every open Watch (and any that
arrives later) with the status given, the Error as its detail, so the client
reconnects elsewhere.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator
from typing import Any

import grpc
from grpc_health.v1 import health

__all__ = ["DrainingHealth"]

# Ends a stream with a status: sets code, details and trailing metadata on the context.
Ending = Callable[[grpc.ServicerContext], None]


class _Watch:
    """One open Watch: its context, and the callback that feeds it until it ends."""

    def __init__(self, ctx: grpc.ServicerContext, send: Callable[[Any], None]) -> None:
        self.ctx = ctx
        self._send = send
        self._lock = threading.Lock()
        self._open = True

    def send(self, response: Any) -> None:
        with self._lock:
            if self._open:
                self._send(response)
                self._open = response is not None

    def end(self, ending: Ending) -> None:
        with self._lock:
            if self._open:
                ending(self.ctx)
                self._send(None)
                self._open = False


class DrainingHealth(health.HealthServicer):
    """grpc.health.v1.Health whose Watch streams the server can end."""

    def __init__(self) -> None:
        super().__init__()
        self._watches_lock = threading.Lock()
        self._watches: set[_Watch] = set()
        self._ending: Ending | None = None

    def Watch(
        self,
        request: Any,
        context: grpc.ServicerContext,
        send_response_callback: Callable[[Any], None] | None = None,
    ) -> Any:
        if send_response_callback is None:
            # grpc.aio steps a blocking generator on a pool thread (aio_handlers.py): one
            # fed by the same callback, ended by end_watches or by the call's end.
            responses: queue.SimpleQueue[Any] = queue.SimpleQueue()
            if context.add_callback(lambda: responses.put(None)):
                self.Watch(request, context, responses.put)
            else:  # the call ended already
                responses.put(None)
            return _until_none(responses)
        watch = _Watch(context, send_response_callback)
        with self._watches_lock:
            ending = self._ending
            if ending is None:
                self._watches.add(watch)
        if ending is not None:
            watch.end(ending)
            return None
        context.add_callback(lambda: self._forget(watch))
        return super().Watch(request, context, watch.send)

    def end_watches(self, ending: Ending) -> None:
        """End every open Watch now, and any later one at once, as ending says."""
        with self._watches_lock:
            self._ending = ending
            watches, self._watches = self._watches, set()
        for watch in watches:
            watch.end(ending)

    def _forget(self, watch: _Watch) -> None:
        with self._watches_lock:
            self._watches.discard(watch)


def _until_none(responses: queue.SimpleQueue[Any]) -> Generator[Any, None, None]:
    """What arrives on responses up to the None that ends the stream (a generator, which
    the handler closes when its call ends)."""
    yield from iter(responses.get, None)
