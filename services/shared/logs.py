"""Structured logs: one JSON object a line, stamped with the request id.

Every call writes one line, so the line is made cheaply: formatted when it is
logged (the request id is known then), appended to a buffer, and written with
the lines around it by a background thread every ``FLUSH_SECONDS``, in one
system call. A warning or an error is written at once, with whatever came
before it; so is everything at exit. A process killed outright loses at most
the last ``FLUSH_SECONDS`` of lines.

The buffer holds at most ``MAX_PENDING_LINES``: if the stream cannot take the
lines as fast as they come (a stalled pipe), the newest INFO and DEBUG lines
are dropped rather than memory growing, and the next write says how many.
Warnings and errors are never dropped.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import logging
import sys
import threading
import time
from typing import Any, Final, TextIO

from services.shared.context import current_request_id
from services.shared.tracing import current_ids

__all__ = [
    "FLUSH_SECONDS",
    "MAX_PENDING_LINES",
    "BatchedHandler",
    "JsonFormatter",
    "configure_logging",
]

FLUSH_SECONDS: Final = 0.1
MAX_PENDING_LINES: Final = 10_000

# Attributes every LogRecord has; anything else was passed in `extra` and is logged.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
}


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON: time, level, logger, message, request_id, trace_id and
    span_id (when a trace is current), and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_millis(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if request_id := current_request_id():
            entry["request_id"] = request_id
        trace_id, span_id = current_ids()
        if trace_id:
            entry["trace_id"], entry["span_id"] = trace_id, span_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# The last second formatted, and how: lines come many to a second.
_last_second: tuple[int, str] = (-1, "")


def _utc_millis(created: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-11-30T08:00:00.123+00:00."""
    global _last_second
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    second, text = _last_second
    if second != seconds:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, text)  # one tuple, replaced whole: safe across threads
    return f"{text}.{millis:03d}+00:00"


class BatchedHandler(logging.Handler):
    """Formats each record as it is logged; writes the lines in batches (see the module)."""

    def __init__(
        self,
        stream: TextIO,
        flush_seconds: float = FLUSH_SECONDS,
        max_pending: int = MAX_PENDING_LINES,
    ) -> None:
        super().__init__()
        self._stream = stream
        self._lines: collections.deque[str] = collections.deque()
        self._writing = threading.Lock()  # one batch at a time, in order
        self._flush_seconds = flush_seconds
        self._max_pending = max_pending
        self._dropped = 0  # counted without a lock: a report, not an invariant
        threading.Thread(target=self._flush_forever, name="log-writer", daemon=True).start()
        atexit.register(self.flush)

    def handle(self, record: logging.LogRecord) -> bool:
        """Emit without the handler's lock: emit is safe on its own, and a stream that stalls
        a warning's write must not hold up the INFO lines of every other thread."""
        passed = bool(self.filter(record))
        if passed:
            self.emit(record)
        return passed

    def emit(self, record: logging.LogRecord) -> None:
        urgent = record.levelno >= logging.WARNING
        if not urgent and len(self._lines) >= self._max_pending:
            self._dropped += 1
            return
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)  # deque.append is atomic: emit takes no lock of its own
        if urgent:
            self.flush()

    def flush(self) -> None:
        with self._writing:
            lines = []
            with contextlib.suppress(IndexError):
                while True:
                    lines.append(self._lines.popleft())
            if self._dropped:
                lines.append(self._dropped_line())
            if lines:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()

    def _dropped_line(self) -> str:
        dropped, self._dropped = self._dropped, 0
        record = logging.LogRecord(
            "loansuite.logs", logging.WARNING, __file__, 0, "log lines dropped", (), None
        )
        record.dropped = dropped
        record.max_pending = self._max_pending
        self.filter(record)  # stamps the service, as on every other line
        return self.format(record)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(self._flush_seconds)
            self.flush()


def configure_logging(level: str = "INFO", *, service: str = "") -> None:
    """Send JSON logs to stderr; `service` is stamped on every line."""
    # No line shows the thread or process, so records need not look them up (the
    # logging HOWTO's "Optimization").
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = BatchedHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    if service:
        handler.addFilter(_stamp(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _stamp(service: str) -> logging.Filter:
    class _ServiceFilter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.service = service
            return True

    return _ServiceFilter()
