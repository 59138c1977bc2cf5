"""`loansuite audit export` and `audit verify --file`, run as real processes on real databases.

One log is built per backend through the real IngestEvents path and exported
once; each tampering is made on a copy of the exported file.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc

from services.audit.chain import canonical_encoding, link_hash
from services.audit.heads import HEADS_FILE_NAME
from services.audit.queries import CHUNK_SIZE
from services.audit.wiring import start as start_audit
from services.auth.wiring import start as start_auth
from services.shared.db import libpq_dsn
from tests.audit.chain_log import Log, read_log
from tests.audit.support import Stack, audit_settings, make_event, service_metadata
from tests.auth.support import auth_settings
from tests.support import BACKENDS, LOANSUITE, SERVICE_SECRET, Databases

SIZE, BATCH = 2100, 300  # the log's events, and how many each IngestEvents request carries
UNTIL = 2050  # exported: more than one page of reads, and short of the log's end
K = 777  # where the tampering strikes in the middle of the file

Lines = list[str]  # an export file's lines: the header, then event 1 at index 1


@dataclass
class Exported:
    """A log, its published heads, and its export up to UNTIL."""

    directory: Path
    url: str
    log: Log
    heads: Path
    out: Path
    result: subprocess.CompletedProcess[str]

    def hash(self, sequence: int) -> str:
        return self.log[sequence].hash

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines()

    def copy(self, name: str, lines: list[str]) -> Path:
        path = self.directory / "copies" / f"{name}.jsonl"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in lines))
        return path


def loansuite(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [LOANSUITE, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def export(url: str, until: int, out: Path) -> subprocess.CompletedProcess[str]:
    return loansuite("audit", "export", "--database-url", url, "--until", str(until), "--out", out)


def verify_file(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return loansuite("audit", "verify", "--file", path, *extra)


def _batches() -> list[list[audit_pb.AuditEvent]]:
    """The log's events, the first batch opening with events that are awkward to write out."""
    unusual = make_event("org-z", "org-a", "org-m", resource_id='Zürich ☀ 🌍 "quoted" \\')
    unusual.changes.add(field="note", old_value='"a\\\\b"', new_value='"\\u00e9"')
    anonymous = make_event(action="LOGIN_FAILED", resource_type="user", actor_user_id="")
    anonymous.ClearField("changes")
    plain = [make_event(f"org-{i % 5}", resource_id=f"loan-{i}") for i in range(SIZE - 2)]
    events = [unusual, anonymous, *plain]
    return [events[start : start + BATCH] for start in range(0, SIZE, BATCH)]


def _build(directory: Path, url: str, auth_port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{auth_port}") as channel:
        metadata = service_metadata(auth_grpc.AuthServiceStub(channel))
    audit = start_audit(audit_settings(directory, url, auth_port), port=0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{audit.port}") as channel:
            stub = audit_grpc.AuditServiceStub(channel)
            requests = [audit_pb.IngestEventsRequest(events=b) for b in _batches()]
            acks = list(stub.IngestEvents(iter(requests), metadata=metadata, timeout=120))
    finally:
        audit.stop(0)
    assert all(a.HasField("ack") for a in acks), acks


@pytest.fixture(scope="module", params=BACKENDS)
def exported(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Exported]:
    """The log, built once per backend, and `loansuite audit export --until UNTIL` of it."""
    directory = tmp_path_factory.mktemp(f"export-{request.param}")
    databases = Databases(str(request.param), directory)
    auth = start_auth(auth_settings(directory, databases.new("auth"), SERVICE_SECRET), port=0)
    try:
        url = databases.new("audit")
        _build(directory, url, auth.port)
        out = directory / "cold" / "audit-until.jsonl"
        out.parent.mkdir()
        result = export(url, UNTIL, out)
        yield Exported(directory, url, read_log(url), directory / HEADS_FILE_NAME, out, result)
    finally:
        auth.stop(0)
        databases.drop_all()


def _verification(
    intact: bool, checked: int, head: dict[str, Any] | None, expected: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "intact": intact,
        "checked_events": checked,
        "first_bad_sequence": 0,
        "problem": "",
        "head": head,
        "expected_head": expected,
    }


def _head(sequence: int, hash_: str) -> dict[str, Any]:
    return {"sequence": sequence, "hash": hash_}


# -- export, and the file it writes --------------------------------------------------


def test_export_writes_events_up_to_until_with_the_head_there(exported: Exported) -> None:
    assert CHUNK_SIZE < UNTIL < SIZE == len(exported.log)
    head = _head(UNTIL, exported.hash(UNTIL))

    assert (exported.result.returncode, exported.result.stderr) == (0, "")
    assert json.loads(exported.result.stdout) == {
        "events": UNTIL,
        "head": head,
        "out": str(exported.out),
    }
    assert stat.S_IMODE(exported.out.stat().st_mode) == 0o600
    assert os.listdir(exported.out.parent) == [exported.out.name]  # no temporary file left


def test_the_file_holds_every_field_the_chain_covers_as_the_database_has_it(
    exported: Exported,
) -> None:
    header, *events = [json.loads(line) for line in exported.lines()]

    assert header == {
        "format": "loansuite.audit.export",
        "version": 1,
        "head": _head(UNTIL, exported.hash(UNTIL)),
    }
    assert len(events) == UNTIL
    for sequence, event in enumerate(events, start=1):
        stored = exported.log[sequence]
        assert event == {**json.loads(canonical_encoding(stored)), "hash": stored.hash}
    assert events[0]["resource_id"] == 'Zürich ☀ 🌍 "quoted" \\'
    assert (events[1]["actor_user_id"], events[1]["changes"]) == ("", [])


def test_the_export_verifies_intact_from_the_file_alone(exported: Exported) -> None:
    # Elsewhere, as in cold storage: nothing but the file.
    moved = exported.copy("alone", exported.lines())
    head = _head(UNTIL, exported.hash(UNTIL))

    result = verify_file(moved)

    assert (result.returncode, result.stderr) == (0, "")
    assert json.loads(result.stdout) == _verification(True, UNTIL, head, head)


@pytest.mark.parametrize("until", [1, SIZE])
def test_the_smallest_and_the_whole_export(exported: Exported, until: int) -> None:
    out = exported.directory / f"until-{until}.jsonl"
    head = _head(until, exported.hash(until))

    written = export(exported.url, until, out)
    verified = verify_file(out)

    assert json.loads(written.stdout) == {"events": until, "head": head, "out": str(out)}
    assert (verified.returncode, json.loads(verified.stdout)) == (
        0,
        _verification(True, until, head, head),
    )


# -- a head published elsewhere ------------------------------------------------------


def _published(exported: Exported) -> list[tuple[int, str]]:
    lines = [json.loads(line) for line in exported.heads.read_text().splitlines()]
    return [(line["sequence"], line["hash"]) for line in lines]


def test_a_published_head_is_checked_as_well_as_the_files_own(exported: Exported) -> None:
    published = _published(exported)
    before = max(head for head in published if head[0] <= UNTIL)  # 1800, in the file
    after = published[-1]  # SIZE, beyond the file's end
    assert (before[0], after[0]) == (UNTIL // BATCH * BATCH, SIZE)
    own = _head(UNTIL, exported.hash(UNTIL))

    older = verify_file(exported.out, "--expect-head", f"{before[0]}:{before[1]}")
    wrong = verify_file(exported.out, "--expect-head", f"{before[0]}:{'0' * 64}")
    later = verify_file(exported.out, "--expect-head", f"{after[0]}:{after[1]}")

    assert (older.returncode, json.loads(older.stdout)) == (
        0,
        _verification(True, UNTIL, own, _head(*before)),
    )
    assert (wrong.returncode, json.loads(wrong.stdout)) == (
        1,
        {
            **_verification(False, before[0], _head(*before), _head(before[0], "0" * 64)),
            "first_bad_sequence": before[0],
            "problem": "HEAD_MISMATCH",
        },
    )
    assert (later.returncode, json.loads(later.stdout)) == (
        1,
        {
            **_verification(False, UNTIL, own, _head(*after)),
            "first_bad_sequence": UNTIL + 1,
            "problem": "TRUNCATED",
        },
    )


def _rehashed_from(lines: list[str], sequence: int) -> list[str]:
    """The file an attacker rewrites from sequence on: every link recomputed, a new header."""
    lines = list(lines)
    previous = bytes.fromhex(json.loads(lines[sequence - 1])["hash"])
    for number in range(sequence, len(lines)):
        event = json.loads(lines[number])
        fields = {k: v for k, v in event.items() if k != "hash"}
        encoding = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
        previous = link_hash(previous, encoding)
        lines[number] = json.dumps({**fields, "hash": previous.hex()}, separators=(",", ":"))
    header = json.loads(lines[0])
    header["head"]["hash"] = previous.hex()
    lines[0] = json.dumps(header)
    return lines


def test_only_a_published_head_shows_a_file_rewritten_wholesale(exported: Exported) -> None:
    lines = exported.lines()
    edited = json.loads(lines[K])
    edited["resource_id"] = "edited"
    lines[K] = json.dumps(edited)
    rewritten = exported.copy("rewritten", _rehashed_from(lines, K))
    before = max(head for head in _published(exported) if head[0] <= UNTIL)

    alone = verify_file(rewritten)
    against = verify_file(rewritten, "--expect-head", f"{before[0]}:{before[1]}")

    assert (alone.returncode, json.loads(alone.stdout)["intact"]) == (0, True)
    assert (against.returncode, json.loads(against.stdout)["problem"]) == (1, "HEAD_MISMATCH")
    assert json.loads(against.stdout)["first_bad_sequence"] == before[0]


# -- a tampered file -----------------------------------------------------------------


def _edit(lines: Lines, number: int, **fields: Any) -> None:
    lines[number] = json.dumps({**json.loads(lines[number]), **fields})


def _edit_field(lines: Lines, log: Log) -> None:
    _edit(lines, K, resource_id="edited")


def _drop_organization(lines: Lines, log: Log) -> None:
    _edit(lines, K, organization_ids=json.loads(lines[K])["organization_ids"][1:])


def _remove_line(lines: Lines, log: Log) -> None:
    del lines[K]


def _swap_lines(lines: Lines, log: Log) -> None:
    lines[K], lines[K + 1] = lines[K + 1], lines[K]


def _repeat_line(lines: Lines, log: Log) -> None:
    lines.insert(K + 1, lines[K])


def _remove_last_line(lines: Lines, log: Log) -> None:
    del lines[-1]


def _append_the_next_event(lines: Lines, log: Log) -> None:
    event = log[UNTIL + 1]  # a genuine event, properly chained: still not the file's
    lines.append(json.dumps({**json.loads(canonical_encoding(event)), "hash": event.hash}))


def _claim_another_head(lines: Lines, log: Log) -> None:
    _edit(lines, 0, head=_head(UNTIL, log[UNTIL - 1].hash))


def _claim_an_earlier_head(lines: Lines, log: Log) -> None:
    _edit(lines, 0, head=_head(UNTIL - 1, log[UNTIL - 1].hash))


# name: (tampering, problem, first bad sequence, events checked before it)
TAMPERINGS: dict[str, tuple[Callable[[Lines, Log], None], str, int, int]] = {
    "edited_field": (_edit_field, "HASH_MISMATCH", K, K - 1),
    "dropped_organization": (_drop_organization, "HASH_MISMATCH", K, K - 1),
    "removed_line": (_remove_line, "SEQUENCE_GAP", K, K - 1),
    "swapped_lines": (_swap_lines, "SEQUENCE_GAP", K, K - 1),
    "repeated_line": (_repeat_line, "SEQUENCE_DUPLICATE", K, K),
    "removed_last_line": (_remove_last_line, "TRUNCATED", UNTIL, UNTIL - 1),
    "appended_event": (_append_the_next_event, "BEYOND_HEAD", UNTIL + 1, UNTIL),
    "other_head": (_claim_another_head, "HEAD_MISMATCH", UNTIL, UNTIL),
    "earlier_head": (_claim_an_earlier_head, "BEYOND_HEAD", UNTIL, UNTIL - 1),
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
@pytest.mark.parametrize("against", ["header", "published"])
def test_a_tampered_file_is_broken_at_the_first_bad_event(
    exported: Exported, name: str, against: str
) -> None:
    """Against the header's head alone, or a published one too: that one must not hide a fault."""
    tampering, problem, first_bad, checked = TAMPERINGS[name]
    lines = exported.lines()
    tampering(lines, exported.log)
    expected = json.loads(lines[0])["head"]
    extra: list[str] = []
    if against == "published":
        published = max(head for head in _published(exported) if head[0] < K)
        expected = _head(*published)
        extra = ["--expect-head", f"{published[0]}:{published[1]}"]

    result = verify_file(exported.copy(f"{name}-{against}", lines), *extra)

    assert (result.returncode, result.stderr) == (1, "")
    assert json.loads(result.stdout) == {
        **_verification(False, checked, _head(checked, exported.hash(checked)), expected),
        "first_bad_sequence": first_bad,
        "problem": problem,
    }


# -- refused, or unreadable: exit 2 and one line on stderr ---------------------------


def _refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert (result.returncode, result.stdout) == (2, "")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_export_refuses_an_until_outside_the_log(exported: Exported) -> None:
    out = exported.directory / "refused.jsonl"

    _refused(export(exported.url, 0, out), "--until must be at least 1, not 0")
    _refused(export(exported.url, SIZE + 1, out), f"beyond the log's last event, {SIZE}")
    assert not out.exists()


def test_export_never_overwrites_a_file(exported: Exported) -> None:
    before = exported.out.read_bytes()

    result = export(exported.url, 10, exported.out)

    _refused(result, f"{exported.out} exists; an export never overwrites a file")
    assert exported.out.read_bytes() == before


def test_export_refuses_a_missing_sqlite_database_and_creates_none(tmp_path: Path) -> None:
    missing = tmp_path / "audit.db"

    out = tmp_path / "audit.jsonl"

    result = loansuite("audit", "export", "--data-dir", tmp_path, "--until", "1", "--out", out)

    _refused(result, f"no audit database at {missing}")
    assert os.listdir(tmp_path) == []


def test_verify_file_reports_a_missing_file(tmp_path: Path) -> None:
    _refused(verify_file(tmp_path / "nowhere.jsonl"), "No such file or directory")


def test_verify_takes_a_file_or_a_database_not_both(tmp_path: Path) -> None:
    result = loansuite(
        "audit", "verify", "--file", tmp_path / "f", "--database-url", "sqlite:///x.db"
    )

    assert (result.returncode, result.stdout) == (2, "")
    assert "not allowed with argument" in result.stderr


def _replace(number: int, text: Callable[[str], str]) -> Callable[[Lines], Lines]:
    def change(lines: Lines) -> Lines:
        return [text(line) if n == number else line for n, line in enumerate(lines, start=1)]

    return change


def _field(number: int, **fields: Any) -> Callable[[Lines], Lines]:
    return _replace(number, lambda line: json.dumps({**json.loads(line), **fields}))


def _without(number: int, field: str) -> Callable[[Lines], Lines]:
    return _replace(
        number, lambda line: json.dumps({k: v for k, v in json.loads(line).items() if k != field})
    )


# name: (change to the file's lines, what stderr must say)
MALFORMED: dict[str, tuple[Callable[[Lines], Lines], str]] = {
    "empty": (lambda lines: [], "line 1: the file is empty; expected the header line"),
    "not_json": (_replace(5, lambda line: line[:-1]), "line 5: Invalid JSON"),
    "not_an_object": (_replace(6, lambda line: "[]"), "line 6: Input should be an object"),
    "blank": (_replace(9, lambda line: ""), "line 9: Invalid JSON"),
    "sequence_as_text": (_field(7, sequence="6"), "line 7: sequence: Input should be a valid int"),
    "unknown_field": (_field(8, note="x"), "line 8: note: Extra inputs are not permitted"),
    "missing_hash": (_without(10, "hash"), "line 10: hash: Field required"),
    "change_values": (_field(11, changes=[["a", 1, 2]]), "line 11: changes.0.1: Input should"),
    "other_instant_form": (
        _field(12, occur_time="2026-03-01T12:00:00+00:00"),
        "line 12: occur_time: must be a UTC instant such as 2026-03-01T12:00:00.000000Z",
    ),
    "impossible_date": (
        _field(13, ingest_time="2026-02-30T12:00:00.000000Z"),
        "line 13: ingest_time: must be a UTC instant",
    ),
    "no_header": (lambda lines: lines[1:], "line 1: format: Field required"),
    "other_format": (_field(1, version=2), "line 1: version: Input should be 1"),
    "head_hash": (_field(1, head={"sequence": UNTIL, "hash": "ABC"}), "line 1: head.hash:"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_line_is_named(exported: Exported, name: str) -> None:
    change, message = MALFORMED[name]
    path = exported.copy(f"malformed-{name}", change(exported.lines()))

    _refused(verify_file(path), f"{path}, {message}")


# -- a crash, a race ------------------------------------------------------------------


@contextlib.contextmanager
def _held_midway(audit_url: str, out: Path) -> Iterator[subprocess.Popen[str]]:
    """An export that has begun its file and waits, until the block ends, for a table lock."""
    dsn = libpq_dsn(audit_url)
    with psycopg.connect(dsn) as blocker:
        # The export reads the events, then waits here for their organizations, mid-file.
        blocker.execute("LOCK TABLE audit_event_organizations IN ACCESS EXCLUSIVE MODE")
        command = [LOANSUITE, "audit", "export", "--database-url", audit_url, "--until", "5"]
        process = subprocess.Popen(
            [*command, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            _wait_for_a_file(out.parent, process)
            yield process
        finally:
            blocker.rollback()


def _wait_for_a_file(directory: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not os.listdir(directory):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the export wrote nothing"
        time.sleep(0.01)


# A SQLite reader never waits for a lock: only PostgreSQL can hold an export midway.
@pytest.mark.parametrize("backend", ["postgresql"])
def test_an_export_killed_midway_leaves_no_file_under_its_name(
    stack: Stack, audit_url: str, tmp_path: Path
) -> None:
    stack.ingest([make_event("org-a") for _ in range(5)])
    out = tmp_path / "cold" / "audit.jsonl"
    out.parent.mkdir()

    with _held_midway(audit_url, out) as process:
        written = os.listdir(out.parent)
        process.kill()
        process.communicate()

    assert not out.exists()
    assert [name.startswith(f".{out.name}.") for name in written] == [True]
    again = export(audit_url, 5, out)  # what the killed one left is no obstacle
    assert (again.returncode, json.loads(verify_file(out).stdout)["intact"]) == (0, True)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_file_made_at_out_during_the_export_is_not_overwritten(
    stack: Stack, audit_url: str, tmp_path: Path
) -> None:
    stack.ingest([make_event("org-a") for _ in range(5)])
    out = tmp_path / "cold" / "audit.jsonl"
    out.parent.mkdir()

    with _held_midway(audit_url, out) as process:
        out.write_text("someone else's\n")
    _, err = process.communicate(timeout=60)

    assert process.returncode == 2
    assert f"{out} exists; an export never overwrites a file" in err
    assert out.read_text() == "someone else's\n"
    assert os.listdir(out.parent) == [out.name]  # the export's own file is gone
