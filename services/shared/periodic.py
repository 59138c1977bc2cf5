"""A sweep that runs now and then every interval, in a thread of its own, until stopped."""

from __future__ import annotations

import logging
import threading
import time
from typing import ClassVar

__all__ = ["PeriodicSweep"]

log = logging.getLogger("loansuite.periodic")


class PeriodicSweep:
    """Subclasses define sweep(); a failed round is logged and the next one tries again."""

    thread_name: ClassVar[str]

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self) -> object:
        raise NotImplementedError

    def start(self, interval: float) -> None:
        """Sweep now and every interval seconds, in a thread of its own."""
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name=self.thread_name, daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, interval: float) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self.sweep()
            except Exception:  # the database is away: the next round tries again
                log.exception("sweep failed", extra={"sweep": self.thread_name})
            self._stopping.wait(max(0.0, interval - (time.monotonic() - started)))
