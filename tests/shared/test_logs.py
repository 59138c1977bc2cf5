"""The batched JSON log handler: lines in order, a bounded buffer, warnings never dropped."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from services.shared.logs import BatchedHandler, JsonFormatter


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


def attach(logger: logging.Logger, stream: io.StringIO, max_pending: int) -> BatchedHandler:
    handler = BatchedHandler(stream, flush_seconds=3600, max_pending=max_pending)
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
