"""Structured logs: one JSON object a line, stamped with the request id.

Every call writes one line, so the line is made cheaply: formatted when it is
logged (the request id is known then), appended to a buffer, and written with
the lines around it by a background thread every ``FLUSH_SECONDS``, in one
system call. A warning or an error is written at once, with whatever came
before it; so is everything at exit. A process killed outright loses at most
the last ``FLUSH_SECONDS`` of lines.

The line every call writes (``log_call``) skips ``logging``'s record, filters
and formatter when the handler it would reach is this module's alone: the same
JSON, built from values that need no escaping, at a tenth of the cost. Any
other set-up (a handler added for a test, a filter) gets the ordinary record.

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
    "log_call",
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
        *,
        service: str = "",
    ) -> None:
        super().__init__()
        self.service = service  # stamped on every line when set
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
        if record.levelno < logging.WARNING and len(self._lines) >= self._max_pending:
            self._dropped += 1
            return
        if self.service:
            record.service = self.service
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.append(line, record.levelno)

    def append(self, line: str, level: int) -> None:
        """Queue a formatted line; a warning or an error is written at once."""
        if level < logging.WARNING:
            if len(self._lines) >= self._max_pending:
                self._dropped += 1
                return
            self._lines.append(line)  # deque.append is atomic: no lock of our own
        else:
            self._lines.append(line)
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
        if self.service:
            record.service = self.service
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
    handler = BatchedHandler(sys.stderr, service=service)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def log_call(logger: logging.Logger, level: int, rpc: str, outcome: str, elapsed_ms: float) -> None:
    """Log a finished call: ``{"message": "call", "rpc", "outcome", "elapsed_ms"}`` with the
    time, level, logger, request id, trace ids and service, as ``JsonFormatter`` writes it.

    ``rpc`` is a method's full name from its descriptor, ``outcome`` a code's name, the
    request id matches ``validation.REQUEST_ID`` (or was made here) and the trace ids are
    hex: nothing needs escaping, so the line is put together directly when the batched
    handler is the only one it would reach."""
    if not logger.isEnabledFor(level):
        return
    handler = _sole_handler(logger, level)
    if handler is None:
        extra = {"rpc": rpc, "outcome": outcome, "elapsed_ms": elapsed_ms}
        logger.log(level, "call", extra=extra)
        return
    line = (
        f'{{"time": "{_utc_millis(time.time())}", "level": "{logging.getLevelName(level)}", '
        f'"logger": "{logger.name}", "message": "call"'
    )
    if request_id := current_request_id():
        line += f', "request_id": "{request_id}"'
    trace_id, span_id = current_ids()
    if trace_id:
        line += f', "trace_id": "{trace_id}", "span_id": "{span_id}"'
    line += f', "rpc": "{rpc}", "outcome": "{outcome}", "elapsed_ms": {elapsed_ms}'
    if handler.service:
        line += f', "service": "{handler.service}"'
    handler.append(line + "}", level)


def _sole_handler(logger: logging.Logger, level: int) -> BatchedHandler | None:
    """The batched handler, when it is the only one a record from `logger` reaches, takes
    `level`, and no filter or other formatter stands between; else None."""
    if logger.filters:
        return None
    found: logging.Logger | None = logger
    while found is not None and not found.handlers:
        found = found.parent if found.propagate else None
    if found is None or len(found.handlers) != 1 or (found.propagate and found.parent):
        return None
    handler = found.handlers[0]
    if (
        isinstance(handler, BatchedHandler)
        and not handler.filters
        and type(handler.formatter) is JsonFormatter
        and handler.level <= level
    ):
        return handler
    return None
