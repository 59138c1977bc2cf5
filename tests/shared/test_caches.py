"""The bounded expiring cache that every call reads: expiry, bounds, and eviction order."""

from __future__ import annotations

from services.shared.caches import ExpiringCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_until_its_own_expiry() -> None:
    clock = Clock()
    cache: ExpiringCache[str, int] = ExpiringCache(10, clock=clock)
    cache.put("short", 1, expires_at=1005.0)
    cache.put("long", 2, expires_at=1100.0)

    assert (cache.get("short"), cache.get("long"), cache.get("absent")) == (1, 2, None)
    clock.now = 1005.0
    assert (cache.get("short"), cache.get("long")) == (None, 2)


def test_a_full_cache_drops_expired_entries_before_live_ones() -> None:
    clock = Clock()
    cache: ExpiringCache[int, int] = ExpiringCache(3, clock=clock)
    cache.put(1, 1, expires_at=1001.0)
    cache.put(2, 2, expires_at=2000.0)
    cache.put(3, 3, expires_at=2000.0)
    clock.now = 1500.0

    cache.put(4, 4, expires_at=2000.0)

    assert len(cache) == 3
    assert [cache.get(k) for k in (1, 2, 3, 4)] == [None, 2, 3, 4]


def test_a_cache_full_of_live_entries_drops_the_oldest_and_stays_bounded() -> None:
    clock = Clock()
    cache: ExpiringCache[int, int] = ExpiringCache(20, clock=clock)
    for key in range(1000):  # a burst of new keys, say forged tokens
        cache.put(key, key, expires_at=5000.0)
        assert len(cache) <= 20

    assert cache.get(999) == 999  # the newest stay
    assert cache.get(0) is None  # the oldest went


def test_replacing_an_entry_in_a_full_cache_evicts_nothing() -> None:
    cache: ExpiringCache[int, str] = ExpiringCache(2, clock=Clock())
    cache.put(1, "a", expires_at=5000.0)
    cache.put(2, "b", expires_at=5000.0)

    cache.put(2, "c", expires_at=6000.0)

    assert (cache.get(1), cache.get(2)) == ("a", "c")
