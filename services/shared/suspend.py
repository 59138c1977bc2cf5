"""Synchronous handler code run on an event loop, suspended where it waits.

The servicers are synchronous. Under grpc.aio a call that waits for something
(a write, for its group commit) would otherwise take a pool thread to wait on,
and every such crossing is a GIL hand-off. ``run_suspendable`` runs the
synchronous code in a greenlet on the loop's own thread; where it calls
``wait_for(awaitable)``, the greenlet switches back to the coroutine, which
awaits, and the loop serves other calls meanwhile. Code that does not run under
``run_suspendable`` cannot wait this way (``can_suspend()`` is False) and blocks
as before. SQLAlchemy's asyncio support is built the same way.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import greenlet

__all__ = ["can_suspend", "run_suspendable", "wait_for"]

T = TypeVar("T")


class _OnLoop(greenlet.greenlet):
    """A greenlet whose parent is a coroutine that awaits for it."""


async def run_suspendable(fn: Callable[..., T], *args: Any) -> T:
    """fn(*args) on this thread; each wait_for inside it is awaited here."""
    runner = _OnLoop(fn, greenlet.getcurrent())
    runner.gr_context = contextvars.copy_context()  # what the coroutine saw, as a thread's
    step: Any = runner.switch(*args)
    while not runner.dead:
        try:
            value = await cast(Awaitable[Any], step)
        except BaseException as exc:  # the waiting code sees it raised where it waited
            step = runner.throw(exc)
        else:
            step = runner.switch(value)
    return cast(T, step)


def can_suspend() -> bool:
    """Whether this code runs under run_suspendable, so that wait_for may suspend it."""
    return isinstance(greenlet.getcurrent(), _OnLoop)


def wait_for(awaitable: Awaitable[T]) -> T:
    """The awaitable's result, awaited by the coroutine that runs this code."""
    current = greenlet.getcurrent()
    if not isinstance(current, _OnLoop) or current.parent is None:
        raise RuntimeError("wait_for outside run_suspendable")
    return cast(T, current.parent.switch(awaitable))
