"""In-process metrics, ready for an exporter: calls by envelope code, outbox relay figures."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, replace
from typing import Literal

__all__ = [
    "CallCounter",
    "OutboxSnapshot",
    "OutboxStats",
    "RelayState",
    "RetentionCounter",
    "calls",
    "outboxes",
    "retention",
]

# delivering: this relay sends (or has nothing to send); stalled: delivery has failed for
# longer than the relay's threshold; standby: another relay holds this SQLite database.
RelayState = Literal["delivering", "stalled", "standby"]


class CallCounter:
    """Counts finished calls by (method, outcome); outcome is OK or an envelope code."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def record(self, method: str, outcome: str) -> None:
        with self._lock:
            self._counts[(method, outcome)] += 1

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)


@dataclass(frozen=True)
class OutboxSnapshot:
    """One relay's figures at one moment: gauges first, then counters since start."""

    source: str
    state: RelayState = "delivering"
    pending: int = 0  # events in the outbox not yet acknowledged by audit
    oldest_pending_seconds: float = 0.0
    delivered_total: int = 0  # events acknowledged by audit and marked by this relay
    failed_attempts_total: int = 0  # delivery rounds that raised
    # Events this relay sent again after an earlier send of its own went unmarked: what
    # the process can see of redelivery (audit drops the duplicates by event_id).
    resent_total: int = 0


class OutboxStats:
    """The live figures of one relay: written by its thread, read by anyone."""

    def __init__(self, source: str) -> None:
        self._lock = threading.Lock()
        self._current = OutboxSnapshot(source)

    @property
    def source(self) -> str:
        return self._current.source

    def set_state(self, state: RelayState) -> None:
        with self._lock:
            self._current = replace(self._current, state=state)

    def set_backlog(self, pending: int, oldest_pending_seconds: float) -> None:
        with self._lock:
            self._current = replace(
                self._current, pending=pending, oldest_pending_seconds=oldest_pending_seconds
            )

    def add_delivered(self, count: int) -> None:
        with self._lock:
            self._current = replace(
                self._current, delivered_total=self._current.delivered_total + count
            )

    def add_failed_attempt(self) -> None:
        with self._lock:
            total = self._current.failed_attempts_total + 1
            self._current = replace(self._current, failed_attempts_total=total)

    def add_resent(self, count: int) -> None:
        with self._lock:
            self._current = replace(self._current, resent_total=self._current.resent_total + count)

    def snapshot(self) -> OutboxSnapshot:
        with self._lock:
            return self._current


class OutboxRegistry:
    """The relays running in this process, for an exporter to read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: list[OutboxStats] = []

    def add(self, stats: OutboxStats) -> None:
        with self._lock:
            self._stats.append(stats)

    def remove(self, stats: OutboxStats) -> None:
        with self._lock:
            if stats in self._stats:
                self._stats.remove(stats)

    def snapshot(self) -> list[OutboxSnapshot]:
        with self._lock:
            return [stats.snapshot() for stats in self._stats]


class RetentionCounter:
    """Rows the retention sweep deleted, by (source, table): a counter since start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, source: str, table: str, deleted: int) -> None:
        with self._lock:
            self._counts[(source, table)] += deleted

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)


calls = CallCounter()
outboxes = OutboxRegistry()
retention = RetentionCounter()
