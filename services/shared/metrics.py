"""In-process call counters by method and envelope code, ready for an exporter."""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["CallCounter", "calls"]


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


calls = CallCounter()
