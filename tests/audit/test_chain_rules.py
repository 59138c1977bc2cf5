"""The chain's encoding and walk, and the heads file, without a server."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from services.audit.chain import GENESIS, ChainedEvent, Head, canonical_encoding, link_hash, verify
from services.audit.heads import HeadsFile, read_last_head

EVENT = ChainedEvent(
    sequence=1,
    event_id="3f2b8c1e-0d4a-4e5f-9a7b-1c2d3e4f5a6b",
    action="LOAN_CREATED",
    resource_type="loan",
    resource_id="loan-1",
    actor_user_id="user-1",
    actor_organization_id="org-1",
    actor_role="BORROWER",
    organization_ids=["org-2", "org-1"],
    request_id="req-1",
    source="loans",
    occur_time=datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
    ingest_time=datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC),
    changes=[["name", "null", '"Grün"']],
)


def test_the_canonical_encoding_is_the_documented_one() -> None:
    expected = (
        b'{"action":"LOAN_CREATED","actor_organization_id":"org-1","actor_role":"BORROWER",'
        b'"actor_user_id":"user-1","changes":[["name","null","\\"Gr\\u00fcn\\""]],'
        b'"event_id":"3f2b8c1e-0d4a-4e5f-9a7b-1c2d3e4f5a6b",'
        b'"ingest_time":"2026-03-01T12:00:00.000005Z","occur_time":"2026-03-01T12:00:00.000000Z",'
        b'"organization_ids":["org-1","org-2"],"request_id":"req-1","resource_id":"loan-1",'
        b'"resource_type":"loan","sequence":1,"source":"loans"}'
    )

    assert canonical_encoding(EVENT) == expected
    assert link_hash(GENESIS, expected) == hashlib.sha256(bytes(32) + expected).digest()
    # Pinned: changing the encoding breaks every chain already stored.
    assert link_hash(GENESIS, expected).hex() == (
        "17c46bc40c5126ea0f73554c9189771bb7a74660d19500ee546cfdec19ab05af"
    )


def test_trace_ids_are_encoded_when_set_and_an_event_without_them_hashes_as_before() -> None:
    traced = dataclasses.replace(
        EVENT, trace_id="4bf92f3577b34da6a3ce929d0e0e4736", span_id="00f067aa0ba902b7"
    )

    encoded = json.loads(canonical_encoding(traced))
    assert encoded["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert encoded["span_id"] == "00f067aa0ba902b7"
    assert canonical_encoding(dataclasses.replace(traced, trace_id="", span_id="")) == (
        canonical_encoding(EVENT)
    )
    # An edited trace id breaks the event's link, like any other field.
    hashed = dataclasses.replace(traced, hash=link_hash(GENESIS, canonical_encoding(traced)).hex())
    assert found([hashed]) == ("", 0, 1)
    assert found([dataclasses.replace(hashed, span_id="00f067aa0ba902b8")]) == (
        "HASH_MISMATCH",
        1,
        0,
    )


def chain(count: int) -> list[ChainedEvent]:
    events: list[ChainedEvent] = []
    previous = GENESIS
    for sequence in range(1, count + 1):
        event = dataclasses.replace(EVENT, sequence=sequence, resource_id=f"loan-{sequence}")
        previous = link_hash(previous, canonical_encoding(event))
        events.append(dataclasses.replace(event, hash=previous.hex()))
    return events


def found(events: list[ChainedEvent], head: Head | None = None) -> tuple[str, int, int]:
    result = verify(events, expected_head=head)
    assert result.intact == (result.problem == "")
    return result.problem, result.first_bad_sequence, result.checked_events


def test_an_empty_log_is_intact_unless_a_head_was_published() -> None:
    empty = verify([])

    assert (empty.intact, empty.checked_events, empty.head) == (True, 0, None)
    assert found([], Head(1, "0" * 64)) == ("TRUNCATED", 1, 0)


def test_each_break_is_named_at_its_first_bad_sequence() -> None:
    log = chain(5)
    renumbered = dataclasses.replace(log[3], sequence=3)

    assert found(log, Head(5, log[4].hash)) == ("", 0, 5)
    assert found(log, Head(2, log[1].hash)) == ("", 0, 5)  # later events are no fault
    assert found(log[1:]) == ("SEQUENCE_GAP", 1, 0)
    assert found([*log[:3], log[2], *log[3:]]) == ("SEQUENCE_DUPLICATE", 3, 3)
    assert found([*log[:2], renumbered, *log[4:]]) == ("HASH_MISMATCH", 3, 2)
    assert found([*log[:4], dataclasses.replace(log[4], hash="")]) == ("HASH_MISMATCH", 5, 4)
    assert found(log, Head(3, log[4].hash)) == ("HEAD_MISMATCH", 3, 3)
    assert found(log[:4], Head(5, log[4].hash)) == ("TRUNCATED", 5, 4)


def test_heads_are_appended_in_order_and_fsynced_lines_survive_a_torn_one(tmp_path: Path) -> None:
    path = tmp_path / "heads" / "audit-heads.jsonl"
    heads = HeadsFile(path)

    assert heads.last() is None
    heads.publish(Head(3, "a" * 64))
    heads.publish(Head(2, "b" * 64))  # committed earlier, published later: skipped
    heads.publish(Head(5, "c" * 64))
    with path.open("a") as file:
        file.write('{"sequence": 9, "ha')  # a crash in the middle of an append
    torn = read_last_head(path)
    HeadsFile(path).publish(Head(6, "d" * 64))

    lines = path.read_text().splitlines()
    assert [json.loads(line)["sequence"] for line in (lines[0], lines[1], lines[3])] == [3, 5, 6]
    assert torn == Head(5, "c" * 64)
    assert read_last_head(path) == Head(6, "d" * 64)
