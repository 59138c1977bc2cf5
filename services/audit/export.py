"""`loansuite audit export` and `audit verify --file`: a prefix of the log, checked on its own.

An export file holds events 1 to SEQ as UTF-8 JSON lines, each line one JSON
object written without whitespace and with its keys sorted. The first line is
the header, naming the chain head at SEQ::

    {"format":"loansuite.audit.export","head":{"hash":"<hex>","sequence":SEQ},"version":1}

Each following line is one event, in sequence order from 1: the fields of its
canonical encoding (chain.py), as that encoding writes them, plus its ``hash``::

    {"action":"LOAN_CREATED",...,"hash":"<hex>","ingest_time":"2026-03-01T12:00:00.000000Z",
     ...,"sequence":1,"source":"loans"}

So a verifier needs nothing but the file: it parses each event, recomputes its
link with chain.py and checks that the events end exactly at the header's head.
To the problems chain.py reports it adds one, BEYOND_HEAD: a line after that head.
The header is written by the exporter like the events, so it only tells that
the file is whole; a head published elsewhere (heads.py) also tells that no one
rewrote it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import takewhile
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StringConstraints
from pydantic_core import ErrorDetails, PydanticCustomError
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.audit import queries
from services.audit.chain import ChainedEvent, Head, Verification, canonical_encoding, verify
from services.audit.models import AuditEvent
from services.audit.offline import open_database

__all__ = [
    "FORMAT",
    "VERSION",
    "ExportError",
    "Exported",
    "MalformedExportError",
    "event_line",
    "export_events",
    "verify_file",
]

FORMAT: Final = "loansuite.audit.export"
VERSION: Final = 1

# Exactly the form canonical_encoding gives an instant, so the line shows what was hashed.
_INSTANT: Final = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
# Problems named per malformed line: enough to fix it, short enough for one line.
_MAX_PROBLEMS: Final = 3


class ExportError(Exception):
    """An export refused, or an export file that cannot be verified: the command exits 2."""


class MalformedExportError(ExportError):
    """A line of an export file that the format does not allow."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{path}, line {line}: {problem}")
        self.line = line


@dataclass(frozen=True)
class Exported:
    """What an export wrote: how many events, the head they end at, and where."""

    events: int
    head: Head
    out: Path

    def as_dict(self) -> dict[str, Any]:
        head = {"sequence": self.head.sequence, "hash": self.head.hash}
        return {"events": self.events, "head": head, "out": str(self.out)}


# -- writing ------------------------------------------------------------------


def export_events(database_url: str, *, until: int, out: Path) -> Exported:
    """Write events 1..until of the log at database_url to out, headed by the chain head there."""
    if until < 1:
        raise ExportError(f"--until must be at least 1, not {until}")
    if os.path.lexists(out):
        raise ExportError(f"{out} exists; an export never overwrites a file")
    db = open_database(database_url)
    try:
        with db.read() as session:
            head = _head_at(session, until)
            events = takewhile(lambda e: e.sequence <= until, queries.chained_events(session))
            count = _write_new(out, _header_line(head), map(event_line, events))
    finally:
        db.dispose()
    return Exported(count, head, out)


def event_line(event: ChainedEvent) -> str:
    """The event's line in an export: its canonical encoding's fields and its hash."""
    fields = json.loads(canonical_encoding(event))
    return json.dumps({**fields, "hash": event.hash}, sort_keys=True, separators=(",", ":"))


def _head_at(session: Session, until: int) -> Head:
    last = queries.last_sequence(session)
    if until > last:
        raise ExportError(f"--until {until} is beyond the log's last event, {last}")
    hash_ = session.scalar(select(AuditEvent.hash).where(AuditEvent.sequence == until))
    if hash_ is None:  # only a log someone cut into has a hole below its last sequence
        raise ExportError(f"the log holds no event at sequence {until}")
    return Head(until, hash_)


def _header_line(head: Head) -> str:
    header = {
        "format": FORMAT,
        "version": VERSION,
        "head": {"sequence": head.sequence, "hash": head.hash},
    }
    return json.dumps(header, sort_keys=True, separators=(",", ":"))


def _write_new(out: Path, header: str, lines: Iterable[str]) -> int:
    """Write header and lines to a new file at out, all or nothing; return how many lines."""
    # mkstemp creates the file with mode 0600: events are not for every local user.
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    temporary, count = Path(name), 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as file:
            file.write(header + "\n")
            for line in lines:
                file.write(line + "\n")
                count += 1
            file.flush()
            os.fsync(file.fileno())
        # A link, where rename would silently replace a file created at out meanwhile;
        # either way out names the whole file or nothing, whenever the process dies.
        os.link(temporary, out)
    except FileExistsError:
        raise ExportError(f"{out} exists; an export never overwrites a file") from None
    finally:
        temporary.unlink(missing_ok=True)
    _sync_directory(out.parent)
    return count


def _sync_directory(directory: Path) -> None:
    """Make the new directory entry survive a crash, as the file's contents already do."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading ------------------------------------------------------------------


def _instant(raw: object) -> datetime:
    if isinstance(raw, str) and _INSTANT.fullmatch(raw) is not None:
        try:
            return datetime.fromisoformat(raw)
        except ValueError:  # the form is right but not the date, as on February 30
            pass
    raise PydanticCustomError(
        "instant", "must be a UTC instant such as 2026-03-01T12:00:00.000000Z"
    )


_Instant = Annotated[datetime, PlainValidator(_instant)]
_M = TypeVar("_M", bound=BaseModel)
_Strict = ConfigDict(strict=True, extra="forbid", frozen=True)


class _Head(BaseModel):
    model_config = _Strict

    sequence: int = Field(ge=1)
    hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Header(BaseModel):
    model_config = _Strict

    format: Literal["loansuite.audit.export"]
    version: Literal[1]
    head: _Head


class _EventLine(BaseModel):
    """An event line: ChainedEvent's fields, the instants in their canonical form."""

    model_config = _Strict

    sequence: int
    event_id: str
    action: str
    resource_type: str
    resource_id: str
    actor_user_id: str
    actor_organization_id: str
    actor_role: str
    organization_ids: list[str]
    request_id: str
    source: str
    occur_time: _Instant
    ingest_time: _Instant
    changes: list[list[str]]
    hash: str
    trace_id: str = ""  # only in lines of events that carry a trace
    span_id: str = ""


def verify_file(path: Path, *, expected_head: Head | None = None) -> Verification:
    """Recompute the chain over an export alone; it must end at the head its header names.

    expected_head, a head published elsewhere, is checked too and is the one reported.
    """
    with path.open("rb") as file:
        lines = enumerate(file, start=1)
        named = _header(path, next(lines, None))
        events = _Events(path, lines, named.sequence)
        result = verify(events, expected_head=expected_head or named)
    return _ends_at(result, named, beyond=events.beyond)


def _header(path: Path, first: tuple[int, bytes] | None) -> Head:
    if first is None:
        raise MalformedExportError(path, 1, "the file is empty; expected the header line")
    header = _parse(_Header, path, *first)
    return Head(header.head.sequence, header.head.hash)


class _Events:
    """The file's event lines as events, up to the header's sequence; notes a line beyond it."""

    def __init__(self, path: Path, lines: Iterator[tuple[int, bytes]], last: int) -> None:
        self._path, self._lines, self._last = path, lines, last
        self.beyond = False

    def __iter__(self) -> Iterator[ChainedEvent]:
        for number, line in self._lines:
            if number - 1 > self._last:  # line 2 holds the first event
                self.beyond = True
                return
            event = _parse(_EventLine, self._path, number, line)
            yield ChainedEvent(**event.model_dump())


def _parse(model: type[_M], path: Path, number: int, line: bytes) -> _M:
    try:
        return model.model_validate_json(line)
    except pydantic.ValidationError as exc:
        problems = "; ".join(map(_describe, exc.errors()[:_MAX_PROBLEMS]))
        raise MalformedExportError(path, number, problems) from None


def _describe(error: ErrorDetails) -> str:
    """One problem as "field.path: what is wrong", or just what is wrong with the whole line."""
    where = ".".join(map(str, error["loc"]))
    return f"{where}: {error['msg']}" if where else error["msg"]


def _ends_at(result: Verification, named: Head, *, beyond: bool) -> Verification:
    """A walk that held must also have ended exactly at the head the header names."""
    if not result.intact:
        return result
    if result.checked_events < named.sequence:
        problem, sequence = "TRUNCATED", result.checked_events + 1
    elif result.head != named:
        problem, sequence = "HEAD_MISMATCH", named.sequence
    elif beyond:
        problem, sequence = "BEYOND_HEAD", named.sequence + 1
    else:
        return result
    return replace(result, intact=False, first_bad_sequence=sequence, problem=problem)
