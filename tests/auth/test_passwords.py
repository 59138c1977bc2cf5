"""Password hashing runs about one per core at once, on threads of its own; the others queue."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from argon2 import PasswordHasher

from services.auth import passwords


class CountingHasher(PasswordHasher):
    """The real Argon2id hasher, counting how many of its hashes run at once."""

    def __init__(self, **costs: Any) -> None:
        super().__init__(**costs)
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: set[str] = set()

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            return super().hash(password, salt=salt)
        finally:
            with self._lock:
                self.running -= 1


def test_a_burst_of_hashes_runs_at_most_one_per_core(monkeypatch: pytest.MonkeyPatch) -> None:
    hasher = CountingHasher(time_cost=2, memory_cost=19456, parallelism=1)
    monkeypatch.setattr(passwords, "_HASHER", hasher)
    cores = os.cpu_count() or 1

    with ThreadPoolExecutor(4 * cores) as pool:
        hashes = list(pool.map(passwords.hash_password, [f"pw-{n}" for n in range(4 * cores)]))

    assert 1 <= hasher.most <= cores
    # Not on the callers' threads: only the pool's few threads ever hold Argon2's memory.
    assert 1 <= len(hasher.threads) <= cores
    assert all(name.startswith("argon2") for name in hasher.threads)
    assert all(hasher.verify(h, f"pw-{n}") for n, h in enumerate(hashes))
