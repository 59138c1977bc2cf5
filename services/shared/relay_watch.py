"""How the outbox relay's outcomes show: backoff delays, health, log lines and metrics."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import ClassVar

from services.shared.metrics import OutboxStats, RelayState

__all__ = ["HEALTH_PREFIX", "DeliveryWatch", "HealthReport"]

log = logging.getLogger("loansuite.relay")

HEALTH_PREFIX = "loansuite.outbox."

# Sets a health service name: True is SERVING, False NOT_SERVING, None UNKNOWN.
HealthReport = Callable[[str, bool | None], None]


class DeliveryWatch:
    """Turns delivery outcomes into backoff delays, health, log lines and metrics."""

    _SERVING: ClassVar[dict[RelayState, bool | None]] = {
        "delivering": True,
        "stalled": False,
        "standby": None,  # this process cannot tell whether the lock holder delivers
    }

    def __init__(self, stats: OutboxStats, stall_seconds: float, max_backoff: float) -> None:
        self._stats = stats
        self._stall = stall_seconds
        self._max_backoff = max_backoff
        self._report: HealthReport | None = None
        self._state: RelayState | None = None
        self._failures = 0
        self._failing_since = 0.0

    def attach(self, report: HealthReport | None) -> None:
        self._report = report

    def set_state(self, state: RelayState) -> None:
        if state == self._state:
            return
        self._state = state
        self._stats.set_state(state)
        if self._report is not None:
            self._report(HEALTH_PREFIX + self._stats.source, self._SERVING[state])

    def failed(self, exc: Exception) -> float:
        """Count a failed round; returns how long to wait before the next one."""
        now = time.monotonic()
        if self._failures == 0:
            self._failing_since = now
        self._failures += 1
        self._stats.add_failed_attempt()
        delay = min(self._max_backoff, 0.2 * 2.0 ** min(self._failures, 10))
        delay *= random.uniform(0.5, 1)  # jitter: replicas must not retry in lockstep
        outage = now - self._failing_since
        if outage < self._stall:
            delay = min(delay, self._stall - outage)  # retry at the threshold, so health is on time
        elif self._state != "stalled":
            log.error("audit delivery stalled", extra={"outage_seconds": round(outage, 1)})
            self.set_state("stalled")
        log.warning(
            "audit delivery failed; retrying",
            extra={**_describe(exc), "attempt": self._failures, "retry_in": round(delay, 2)},
        )
        return delay

    def succeeded(self) -> None:
        if self._failures:
            outage = time.monotonic() - self._failing_since
            # A warning like the failures it ends, so a filter that shows one shows both.
            log.warning(
                "audit delivery recovered",
                extra={"failed_attempts": self._failures, "outage_seconds": round(outage, 1)},
            )
            self._failures = 0
        self.set_state("delivering")


def _describe(exc: Exception) -> dict[str, str]:
    # The first public class: grpc raises private subclasses of RpcError.
    public = next(c for c in type(exc).__mro__ if not c.__name__.startswith("_"))
    described = {"error": public.__name__}
    code = getattr(exc, "code", None)  # a grpc.RpcError names its status
    if callable(code):
        status = code()
        described["status"] = str(getattr(status, "name", status))
    return described
