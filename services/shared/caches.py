"""A bounded cache whose entries expire: the caches every call reads (tokens, users).

Every call reads these, so a hit is one dict lookup and a comparison, with no
lock: a dict read is atomic in CPython. Writes take a lock. When the cache is
full, expired entries go first, then the oldest entries, a tenth at a time, so
that a burst of new keys (forged tokens, say) costs a bounded sweep now and
then rather than work on every call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["ExpiringCache"]

K = TypeVar("K")
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """At most ``max_size`` entries, each until its own expiry time (by ``clock``)."""

    def __init__(self, max_size: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._max_size = max_size
        self._clock = clock
        self._entries: dict[K, tuple[V, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value of key, if present and not expired."""
        entry = self._entries.get(key)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    def put(self, key: K, value: V, *, expires_at: float) -> None:
        """Keep value under key until expires_at (on this cache's clock)."""
        with self._lock:
            if key not in self._entries and len(self._entries) >= self._max_size:
                self._make_room()
            self._entries[key] = (value, expires_at)

    def __len__(self) -> int:
        return len(self._entries)

    def _make_room(self) -> None:
        now = self._clock()
        for key in [k for k, (_, expiry) in self._entries.items() if expiry <= now]:
            del self._entries[key]
        if len(self._entries) >= self._max_size:
            # Insertion order is age: the oldest tenth goes.
            for key in list(self._entries)[: max(1, self._max_size // 10)]:
                del self._entries[key]
