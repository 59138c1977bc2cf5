"""The audit log's hash chain: canonical encoding, links, and verification.

Each event's ``hash`` is ``SHA-256(previous || encoding)``, stored as
lowercase hex, where ``previous`` is the previous event's hash as 32 raw bytes
(32 zero bytes for sequence 1) and ``encoding`` is the event's canonical
encoding: the UTF-8 bytes of this JSON object, written without whitespace
(separators ``,`` and ``:``), keys in sorted order, non-ASCII characters
escaped as ``\\uXXXX`` with lowercase hex (Python's
``json.dumps(obj, sort_keys=True, separators=(",", ":"))``)::

    {"action": str, "actor_organization_id": str, "actor_role": str,
     "actor_user_id": str, "changes": [[field, old_value, new_value], ...],
     "event_id": str, "ingest_time": str, "occur_time": str,
     "organization_ids": [str, ...], "request_id": str, "resource_id": str,
     "resource_type": str, "sequence": int, "source": str,
     "span_id": str, "trace_id": str}

``changes`` keeps the event's order; ``organization_ids`` is sorted (by code
point). ``trace_id`` and ``span_id`` (the trace of the call that caused the
event) appear only when set, so events from before they existed keep their
hashes. Instants are UTC with exactly six fraction digits and a ``Z``:
``2026-03-01T12:00:00.000000Z``. Every field a reader of the event sees is in
the encoding, so an edit anywhere breaks the event's own link, and rehashing
the edited event breaks the next one. Only a head published outside the
database (heads.py) reveals events removed from the end.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

__all__ = [
    "GENESIS",
    "ChainedEvent",
    "Head",
    "Verification",
    "canonical_encoding",
    "link_hash",
    "verify",
]

GENESIS: Final = bytes(32)
_HEX_HASH: Final = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Head:
    """An event of the log named by position and hash; a published head attests its prefix."""

    sequence: int
    hash: str

    @staticmethod
    def is_valid_hash(value: str) -> bool:
        return _HEX_HASH.fullmatch(value) is not None


@dataclass(frozen=True)
class ChainedEvent:
    """An event as the chain covers it; ``changes`` holds [field, old, new] triples."""

    sequence: int
    event_id: str
    action: str
    resource_type: str
    resource_id: str
    actor_user_id: str
    actor_organization_id: str
    actor_role: str
    organization_ids: Sequence[str]
    request_id: str
    source: str
    occur_time: datetime
    ingest_time: datetime
    changes: Sequence[Sequence[str]]
    hash: str = ""
    trace_id: str = ""
    span_id: str = ""


@dataclass(frozen=True)
class Verification:
    """The outcome of a walk along the chain; ``head`` is the last event whose link held."""

    intact: bool
    checked_events: int
    first_bad_sequence: int = 0
    problem: str = ""
    head: Head | None = None
    expected_head: Head | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of the command line, matching ChainVerification's field names."""
        return {
            "intact": self.intact,
            "checked_events": self.checked_events,
            "first_bad_sequence": self.first_bad_sequence,
            "problem": self.problem,
            "head": _head_dict(self.head),
            "expected_head": _head_dict(self.expected_head),
        }


def _head_dict(head: Head | None) -> dict[str, Any] | None:
    return None if head is None else {"sequence": head.sequence, "hash": head.hash}


def _instant(value: datetime) -> str:
    # isoformat, not strftime: strftime's %Y does not pad years below 1000 on every platform.
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def canonical_encoding(event: ChainedEvent) -> bytes:
    """The bytes the event's link hashes; the module docstring specifies them."""
    fields = {
        "sequence": event.sequence,
        "event_id": event.event_id,
        "action": event.action,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "actor_user_id": event.actor_user_id,
        "actor_organization_id": event.actor_organization_id,
        "actor_role": event.actor_role,
        "organization_ids": sorted(event.organization_ids),
        "request_id": event.request_id,
        "source": event.source,
        "occur_time": _instant(event.occur_time),
        "ingest_time": _instant(event.ingest_time),
        "changes": [list(change) for change in event.changes],
    }
    if event.trace_id:
        fields["trace_id"] = event.trace_id
    if event.span_id:
        fields["span_id"] = event.span_id
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def link_hash(previous: bytes, encoding: bytes) -> bytes:
    """SHA-256 over the previous hash (32 raw bytes) followed by the event's encoding."""
    return hashlib.sha256(previous + encoding).digest()


def verify(
    events: Iterable[ChainedEvent], *, expected_head: Head | None = None, start: Head | None = None
) -> Verification:
    """Walk events in sequence order; stop at the first break, then check the head.

    The walk starts at sequence 1, or right after ``start``, an event whose link an
    earlier walk verified (a checkpoint): the prefix up to it counts as checked.
    """
    walk = _Walk(expected_head, start)
    for event in events:
        if not walk.step(event):
            return walk.result
    return walk.finish()


class _Walk:
    """The state of one verification: the intact prefix so far, and the first break."""

    def __init__(self, expected_head: Head | None, start: Head | None = None) -> None:
        self.expected = expected_head
        self.head: Head | None = start
        self.checked = 0 if start is None else start.sequence
        self.result = Verification(intact=True, checked_events=0, expected_head=expected_head)

    def step(self, event: ChainedEvent) -> bool:
        """Check one event; False (with ``result`` set) at the first break."""
        want = self.checked + 1
        if event.sequence != want:
            problem = "SEQUENCE_GAP" if event.sequence > want else "SEQUENCE_DUPLICATE"
            return self._broken(want if event.sequence > want else event.sequence, problem)
        previous = bytes.fromhex(self.head.hash) if self.head else GENESIS
        if link_hash(previous, canonical_encoding(event)).hex() != event.hash:
            return self._broken(event.sequence, "HASH_MISMATCH")
        self.head, self.checked = Head(event.sequence, event.hash), want
        if self.expected and self.expected.sequence == want and self.expected.hash != event.hash:
            return self._broken(want, "HEAD_MISMATCH")
        return True

    def finish(self) -> Verification:
        """The log ended intact; it must still reach the expected head."""
        if self.expected and self.expected.sequence > self.checked:
            self._broken(self.checked + 1, "TRUNCATED")
            return self.result
        return Verification(
            intact=True, checked_events=self.checked, head=self.head, expected_head=self.expected
        )

    def _broken(self, sequence: int, problem: str) -> bool:
        self.result = Verification(
            intact=False,
            checked_events=self.checked,
            first_bad_sequence=sequence,
            problem=problem,
            head=self.head,
            expected_head=self.expected,
        )
        return False
