"""The batched JSON log handler: lines in order, a bounded buffer, warnings never dropped."""

from __future__ import annotations

import io
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from services.shared import context
from services.shared.logs import BatchedHandler, JsonFormatter, log_call


class StalledStream(io.StringIO):
    """A stream whose writes wait until it is let go, like a pipe nobody reads."""

    def __init__(self) -> None:
        super().__init__()
        self.let_go = threading.Event()
        self.writing = threading.Event()

    def write(self, text: str) -> int:
        self.writing.set()
        self.let_go.wait(10)
        return super().write(text)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tests.logs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger
    logger.handlers.clear()


def attach(
    logger: logging.Logger, stream: io.StringIO, max_pending: int, service: str = ""
) -> BatchedHandler:
    handler = BatchedHandler(stream, flush_seconds=3600, max_pending=max_pending, service=service)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    return handler


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_lines_are_written_in_order_on_flush(logger: logging.Logger) -> None:
    stream = io.StringIO()
    handler = attach(logger, stream, max_pending=100)

    for n in range(5):
        logger.info("call", extra={"n": n})
    assert stream.getvalue() == ""  # buffered until the flush
    handler.flush()

    assert [line["n"] for line in lines(stream)] == [0, 1, 2, 3, 4]


def test_a_stalled_stream_drops_info_lines_past_the_bound_and_says_how_many(
    logger: logging.Logger,
) -> None:
    stream = StalledStream()
    handler = attach(logger, stream, max_pending=10)
    # A warning is written at once: its thread now waits on the stream, holding the writer.
    stalled = threading.Thread(target=logger.warning, args=("first",))
    stalled.start()
    assert stream.writing.wait(5)

    for n in range(25):
        logger.info("call", extra={"n": n})
    stream.let_go.set()
    stalled.join(10)
    handler.flush()

    written = lines(stream)
    assert [line["n"] for line in written if line["message"] == "call"] == list(range(10))
    dropped = [line for line in written if line["message"] == "log lines dropped"]
    assert [(d["level"], d["dropped"], d["max_pending"]) for d in dropped] == [("WARNING", 15, 10)]


def test_warnings_are_kept_whatever_the_backlog(logger: logging.Logger) -> None:
    stream = io.StringIO()
    handler = attach(logger, stream, max_pending=2)

    for n in range(5):
        logger.info("call", extra={"n": n})
    logger.error("broken")
    handler.flush()

    messages = [line["message"] for line in lines(stream)]
    assert messages.count("call") == 2
    assert "broken" in messages
    assert "log lines dropped" in messages


def test_each_line_has_its_own_time_across_seconds_and_days() -> None:
    """The formatted second is kept between lines; a line of another second gets its own."""
    formatter = JsonFormatter()
    stamped = []
    for created in (86399.25, 86399.75, 86400.0, 86400.5, 1.5, 86400.125):
        record = logging.LogRecord("t", logging.INFO, __file__, 0, "m", (), None)
        record.created = created
        stamped.append(json.loads(formatter.format(record))["time"])

    assert stamped == [
        "1970-01-01T23:59:59.250+00:00",
        "1970-01-01T23:59:59.750+00:00",
        "1970-01-02T00:00:00.000+00:00",
        "1970-01-02T00:00:00.500+00:00",
        "1970-01-01T00:00:01.500+00:00",
        "1970-01-02T00:00:00.125+00:00",
    ]


class Kept(logging.Handler):
    """Keeps the records it is given, as a test's capture or an operator's extra handler would."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def own_logger() -> logging.Logger:
    """A logger made in the test's body: pytest attaches its capture handler to every
    logger that does not propagate when a test starts, but not to one made after."""
    logger = logging.getLogger(f"tests.logs.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_a_call_line_is_the_line_the_formatter_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put together directly, with no record made, the line has the same keys, in the same
    order, with the same values (but its time) as the record the formatter would make of it."""
    logger = own_logger()
    made: list[logging.LogRecord] = []
    make_record = logger.makeRecord

    def counted(*args: Any, **kwargs: Any) -> logging.LogRecord:
        made.append(make_record(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(logger, "makeRecord", counted)
    stream = io.StringIO()
    handler = attach(logger, stream, max_pending=100, service="loans")
    rpc = "loansuite.loans.v1.LoanService/GetLoan"
    span = TracerProvider().get_tracer("tests").start_span("GetLoan")
    request = context.set_request_id("req-1:a.b_c")
    try:
        with trace.use_span(span, end_on_exit=True):
            log_call(logger, logging.INFO, rpc, "OK", 1.25)
            log_call(logger, logging.ERROR, rpc, "INTERNAL", 0.5)  # written at once
            written = stream.getvalue()
            extra = {"rpc": rpc, "outcome": "NOT_FOUND", "elapsed_ms": 3.0}
            logger.info("call", extra=extra)  # a line through logging's record
    finally:
        context.reset_request_id(request)
    handler.flush()

    direct, error, recorded = lines(stream)
    assert [record.outcome for record in made] == ["NOT_FOUND"]  # type: ignore[attr-defined]
    assert written.count("\n") == 2  # the error was written at once, with the line before it
    assert list(direct) == list(recorded)  # the same keys in the same order
    assert direct["trace_id"] == format(span.get_span_context().trace_id, "032x")
    same = {"time", "outcome", "elapsed_ms"}
    assert {k: v for k, v in direct.items() if k not in same} == {
        k: v for k, v in recorded.items() if k not in same
    }
    assert (direct["request_id"], direct["service"], direct["logger"]) == (
        "req-1:a.b_c",
        "loans",
        logger.name,
    )
    assert (direct["level"], direct["outcome"], direct["elapsed_ms"]) == ("INFO", "OK", 1.25)
    assert (error["level"], error["outcome"], error["elapsed_ms"]) == ("ERROR", "INTERNAL", 0.5)


def test_a_call_line_goes_through_logging_when_another_handler_would_see_it() -> None:
    logger = own_logger()
    stream = io.StringIO()
    handler = attach(logger, stream, max_pending=100)
    kept = Kept()
    logger.addHandler(kept)

    log_call(logger, logging.INFO, "s/M", "OK", 2.0)
    handler.flush()

    assert [(r.getMessage(), r.rpc, r.outcome) for r in kept.records] == [("call", "s/M", "OK")]  # type: ignore[attr-defined]
    assert [line["rpc"] for line in lines(stream)] == ["s/M"]


def test_a_call_line_below_the_level_is_not_written() -> None:
    logger = own_logger()
    stream = io.StringIO()
    handler = attach(logger, stream, max_pending=100)
    logger.setLevel(logging.WARNING)

    log_call(logger, logging.INFO, "s/M", "OK", 2.0)
    log_call(logger, logging.ERROR, "s/M", "INTERNAL", 2.0)
    handler.flush()

    assert [line["outcome"] for line in lines(stream)] == ["INTERNAL"]
