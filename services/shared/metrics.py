"""Metrics: the Prometheus series of every process, and in-process figures behind them.

The series (``prometheus_client``) are served on the HTTP side port (http.py):
calls by gRPC code (call_metrics.py), outbox relays, audit ingest and the
database pools. Under ``serve --workers N`` each worker writes its figures to
files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode,
chosen before this module is imported) and whichever worker answers a scrape
reads them all, so counters add up across workers. There, gauges cannot be
read at scrape time in every worker, so probes (pools) refresh every few
seconds; each gauge says how its workers' values combine.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

import prometheus_client as prom

from services.shared.call_metrics import CallCounter, calls

__all__ = [
    "CallCounter",
    "OutboxSnapshot",
    "OutboxStats",
    "RelayState",
    "RetentionCounter",
    "audit_ingested",
    "calls",
    "outboxes",
    "refresh_probes",
    "retention",
    "watch_pool",
]

# delivering: this relay sends (or has nothing to send); stalled: delivery has failed for
# longer than the relay's threshold; standby: another relay holds this SQLite database.
RelayState = Literal["delivering", "stalled", "standby"]

# A backlog is one figure of the database, whichever process measured it last.
_OUTBOX_PENDING = prom.Gauge(
    "loansuite_outbox_pending",
    "Audit events in the outbox not yet acknowledged by audit.",
    ["source"],
    multiprocess_mode="livemostrecent",
)
_OUTBOX_AGE = prom.Gauge(
    "loansuite_outbox_oldest_age_seconds",
    "Age of the oldest undelivered audit event in the outbox.",
    ["source"],
    multiprocess_mode="livemostrecent",
)
_RELAY_DELIVERED = prom.Counter(
    "loansuite_relay_delivered_total", "Audit events acknowledged by audit.", ["source"]
)
_RELAY_FAILED = prom.Counter(
    "loansuite_relay_failed_attempts_total", "Delivery rounds that failed.", ["source"]
)
_RELAY_STALLED = prom.Gauge(
    "loansuite_relay_stalled",
    "1 while delivery has failed for longer than the stall threshold.",
    ["source"],
    multiprocess_mode="livemax",
)
_AUDIT_LAG = prom.Histogram(
    "loansuite_audit_lag_seconds",
    "From an event's time in its source transaction to audit's commit of it.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
_CHAIN_HEAD = prom.Gauge(
    "loansuite_audit_chain_head_sequence",
    "Sequence of the last event audit committed to its hash chain.",
    multiprocess_mode="livemax",
)
_POOL_CHECKED_OUT = prom.Gauge(
    "loansuite_db_pool_checked_out",
    "Database connections in use.",
    ["database"],
    multiprocess_mode="livesum",
)
_POOL_SIZE = prom.Gauge(
    "loansuite_db_pool_size",
    "Database connections the pool keeps (a burst may add overflow ones).",
    ["database"],
    multiprocess_mode="livesum",
)


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
        self._pending = _OUTBOX_PENDING.labels(source)
        self._age = _OUTBOX_AGE.labels(source)
        self._delivered = _RELAY_DELIVERED.labels(source)
        self._failed = _RELAY_FAILED.labels(source)
        self._stalled = _RELAY_STALLED.labels(source)

    @property
    def source(self) -> str:
        return self._current.source

    def set_state(self, state: RelayState) -> None:
        with self._lock:
            self._current = replace(self._current, state=state)
        self._stalled.set(1 if state == "stalled" else 0)

    def set_backlog(self, pending: int, oldest_pending_seconds: float) -> None:
        with self._lock:
            self._current = replace(
                self._current, pending=pending, oldest_pending_seconds=oldest_pending_seconds
            )
        self._pending.set(pending)
        self._age.set(oldest_pending_seconds)

    def add_delivered(self, count: int) -> None:
        with self._lock:
            self._current = replace(
                self._current, delivered_total=self._current.delivered_total + count
            )
        self._delivered.inc(count)

    def add_failed_attempt(self) -> None:
        with self._lock:
            total = self._current.failed_attempts_total + 1
            self._current = replace(self._current, failed_attempts_total=total)
        self._failed.inc()

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


def audit_ingested(occur_times: Iterable[datetime], now: datetime, head_sequence: int) -> None:
    """Audit committed a batch: each event's lag, and the chain's new head."""
    for occur_time in occur_times:
        _AUDIT_LAG.observe(max((now - occur_time).total_seconds(), 0.0))
    _CHAIN_HEAD.set(head_sequence)


# Pools by database label; weak, so a disposed engine that is gone stops counting.
_pools: list[tuple[str, weakref.ref[Any]]] = []
_pools_lock = threading.Lock()


def watch_pool(database: str, engine: Any) -> None:
    """Report the connection pool of an SQLAlchemy engine under database's name."""
    with _pools_lock:
        _pools.append((database, weakref.ref(engine)))


def refresh_probes() -> None:
    """Set the gauges read from live objects (pools); run before a scrape and periodically."""
    totals: dict[str, tuple[int, int]] = {}
    with _pools_lock:
        _pools[:] = [(name, ref) for name, ref in _pools if ref() is not None]
        pools = [(name, ref()) for name, ref in _pools]
    for name, engine in pools:
        pool = getattr(engine, "pool", None)
        checked_out, size = _pool_figures(pool)
        used, kept = totals.get(name, (0, 0))
        totals[name] = (used + checked_out, kept + size)
    for name, (checked_out, size) in totals.items():
        _POOL_CHECKED_OUT.labels(name).set(checked_out)
        _POOL_SIZE.labels(name).set(size)


def _pool_figures(pool: Any) -> tuple[int, int]:
    # QueuePool has both; a pool without them (tests' StaticPool, say) counts as empty.
    checkedout: Callable[[], int] | None = getattr(pool, "checkedout", None)
    size: Callable[[], int] | None = getattr(pool, "size", None)
    if checkedout is None or size is None:
        return 0, 0
    return checkedout(), size()


outboxes = OutboxRegistry()
retention = RetentionCounter()
