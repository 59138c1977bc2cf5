"""PostgreSQL LISTEN: every replica hears every committed loan change and feeds its own bus.

Writers ``pg_notify`` inside their transaction (changes.py), so PostgreSQL
delivers a notification only on commit, to each listening connection. One
thread per process holds such a connection (autocommit, ``LISTEN``) and wakes
at least every ``poll_seconds`` to notice a stop. If the connection drops,
notifications sent meanwhile are lost: the bus ends its streams so that
clients re-subscribe and re-read, and the thread reconnects with backoff.
"""

from __future__ import annotations

import logging
import random
import threading

import psycopg
from sqlalchemy.engine import URL

from services.loans.watching.bus import ChangeBus
from services.loans.watching.changes import CHANNEL, decode_change
from services.shared.db import libpq_dsn

__all__ = ["APPLICATION_NAME", "PgChangeListener"]

log = logging.getLogger("loansuite.loans.listener")

APPLICATION_NAME = "loansuite-loan-changes"
# A dead peer is noticed by TCP keepalives even while no notification arrives.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
               "keepalives_count": 3}  # fmt: skip


class PgChangeListener:
    """A background thread: LISTEN on the loans database, publish what arrives to the bus."""

    def __init__(
        self,
        url: URL,
        bus: ChangeBus,
        *,
        poll_seconds: float = 1.0,
        max_backoff_seconds: float = 10.0,
    ) -> None:
        self._conninfo = libpq_dsn(url)
        self._bus = bus
        self._poll = poll_seconds
        self._max_backoff = max_backoff_seconds
        self._stopping = threading.Event()
        self._listening = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, ready_timeout: float = 10.0) -> bool:
        """Start listening; True once LISTEN is in place (subscribers get UNAVAILABLE until)."""
        self._thread = threading.Thread(target=self._run, name="loan-changes", daemon=True)
        self._thread.start()
        return self._listening.wait(ready_timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self._conninfo,
                    autocommit=True,
                    application_name=APPLICATION_NAME,
                    **_KEEPALIVES,  # type: ignore[arg-type]
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._bus.feed_restored()
                    self._listening.set()
                    failures = 0
                    self._pump(conn)
            except psycopg.Error as exc:
                failures += 1
                log.warning("change listener lost its connection", extra={"error": str(exc)})
            if self._stopping.is_set():
                return
            self._listening.clear()
            self._bus.feed_lost()
            delay = min(self._max_backoff, 0.1 * 2 ** min(failures, 10))
            self._stopping.wait(delay * random.uniform(0.5, 1))

    def _pump(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        while not self._stopping.is_set():
            for notify in conn.notifies(timeout=self._poll):
                try:
                    change = decode_change(notify.payload)
                except (ValueError, KeyError, TypeError):
                    log.error("ignored a malformed change notification")
                    continue
                self._bus.publish((change,))
