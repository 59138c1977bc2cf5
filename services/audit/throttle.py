"""A per-caller rate for calls that cost real work (VerifyChain): a burst, then a steady pace.

The generic cell rate algorithm keeps one number per caller, the theoretical
time of its next call: a call is admitted while that time is at most
``(burst - 1) * interval`` ahead of now, and pushes it ``interval`` further.
Callers whose time has passed are as good as forgotten, so the table (bounded
like every cache here) holds only callers seen within the last burst.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Final

from services.shared.caches import ExpiringCache
from services.shared.errors import ResourceExhaustedError

__all__ = ["CallRate", "CallsThrottledError"]

_MAX_CALLERS: Final = 10_000


class CallsThrottledError(ResourceExhaustedError):
    """Too many calls from one caller: gRPC status RESOURCE_EXHAUSTED, with a retry delay."""

    as_status = True


class CallRate:
    """At most ``burst`` calls at once per caller, then one per ``interval`` seconds."""

    def __init__(
        self,
        *,
        burst: int,
        interval: float,
        what: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or interval <= 0:
            raise ValueError("burst must be at least 1 and interval positive")
        self._interval = interval
        self._tolerance = (burst - 1) * interval
        self._what = what
        self._clock = clock
        self._next: ExpiringCache[str, float] = ExpiringCache(_MAX_CALLERS, clock=clock)
        self._lock = threading.Lock()

    def admit(self, caller_key: str) -> None:
        """Count one call of the caller, or raise CallsThrottledError saying when to retry."""
        with self._lock:
            now = self._clock()
            due = max(self._next.get(caller_key) or now, now)
            wait = due - now - self._tolerance
            if wait > 0:
                raise CallsThrottledError(
                    f"too many {self._what} calls; retry in {math.ceil(wait)} s",
                    reason="CALLS_THROTTLED",
                    retry_delay=timedelta(seconds=wait),
                )
            due += self._interval
            self._next.put(caller_key, due, expires_at=due)
