"""Validation of incoming events and of the list filter: each rule names its field path."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import pydantic
from pydantic import BaseModel, ConfigDict, PlainValidator, field_validator
from pydantic_core import PydanticCustomError

from services.audit.chain import Head
from services.audit.models import TEXT_LENGTH
from services.shared.errors import ValidationError
from services.shared.outbox import AuditRecord
from services.shared.validation import (
    INT64_MAX,
    Violation,
    check_characters,
    fail,
    is_uuid,
    validated,
    violations,
)

__all__ = [
    "MAX_BATCH_SIZE",
    "EventChange",
    "EventFilter",
    "NewAuditEvent",
    "parse_events",
    "parse_filter",
    "parse_head",
    "parse_tail_filter",
]

# One batch is one transaction; the relays send 200 at a time.
MAX_BATCH_SIZE: Final = 1000
# An error response stays small however broken the batch is.
_MAX_VIOLATIONS: Final = 100
_ACTION = re.compile(r"[A-Z][A-Z0-9_]*")
_HEX = re.compile(r"[0-9a-f]+")
# The proto nests the actor; the domain record keeps it flat.
_PROTO_PATHS: Final = {
    "actor_user_id": "actor.user_id",
    "actor_organization_id": "actor.organization_id",
    "actor_role": "actor.role",
}


def _bounded(raw: str) -> str:
    if len(raw) > TEXT_LENGTH:
        raise fail("VALUE_TOO_LONG", "must be at most {n} characters", n=TEXT_LENGTH)
    return raw


def _required(raw: str, reason: str) -> str:
    if not raw:
        raise fail(reason, "is required")
    return _bounded(raw)


# Every text field refuses control and bidi characters, and nothing is altered: ids,
# request ids and changed values are stored and compared exactly as sent, so
# ListAuditEvents still finds them. No producer ever sends hidden characters (ids
# are UUIDs, request ids ASCII, values JSON with non-ASCII escaped), so refusing
# them cannot stall a relay; a filter holding one could never match anyway.
def _word(raw: str) -> str:
    return check_characters(_bounded(raw), reason_prefix="VALUE")


def _required_word(raw: str, reason: str) -> str:
    return _word(_required(raw, reason))


def _organization_id(raw: str) -> str:
    return _word(_required(raw, "ORGANIZATION_ID_REQUIRED"))


def _value(raw: str) -> str:
    # A changed value is JSON of any length (a Text column): bounded by the message only.
    return check_characters(raw, reason_prefix="VALUE")


def _instant(raw: str | datetime | None) -> datetime | None:
    """An aware instant (a datetime or ISO 8601), or None for an unset ("") timestamp."""
    if raw is None or raw == "":
        return None
    try:
        value = raw if isinstance(raw, datetime) else datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise fail("OCCUR_TIME_INVALID", "must be a timestamp between the years 1 and 9999")
    return value.astimezone(UTC)


def _hex_id(raw: str, digits: int, reason: str) -> str:
    """A W3C trace or span id: empty, or lowercase hex of its length and not all zeros."""
    if raw and (not _HEX.fullmatch(raw) or len(raw) != digits or not raw.strip("0")):
        raise fail(reason, "must be empty or {n} lowercase hex digits, not all zero", n=digits)
    return raw


_Word = Annotated[str, PlainValidator(_word)]
_Value = Annotated[str, PlainValidator(_value)]
_OrganizationId = Annotated[str, PlainValidator(_organization_id)]
_OptionalInstant = Annotated[datetime | None, PlainValidator(_instant)]


class EventChange(BaseModel):
    """One changed field; the values are JSON as the producing service wrote them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str
    old_value: _Value
    new_value: _Value

    @field_validator("field", mode="plain")
    @classmethod
    def _field(cls, raw: str) -> str:
        return _required_word(raw, "CHANGE_FIELD_REQUIRED")


class NewAuditEvent(BaseModel):
    """A valid incoming event: canonical UUID, UPPER_SNAKE action, an aware UTC occur_time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    action: str
    resource_type: str
    resource_id: _Word
    actor_user_id: _Word
    actor_organization_id: _Word
    actor_role: _Word
    organization_ids: tuple[_OrganizationId, ...]
    request_id: _Word
    occur_time: datetime
    source: str
    changes: tuple[EventChange, ...]
    trace_id: str = ""
    span_id: str = ""

    @field_validator("trace_id", mode="plain")
    @classmethod
    def _trace_id(cls, raw: str) -> str:
        return _hex_id(raw, 32, "TRACE_ID_INVALID")

    @field_validator("span_id", mode="plain")
    @classmethod
    def _span_id(cls, raw: str) -> str:
        return _hex_id(raw, 16, "SPAN_ID_INVALID")

    @field_validator("event_id", mode="plain")
    @classmethod
    def _event_id(cls, raw: str) -> str:
        if not raw:
            raise fail("EVENT_ID_REQUIRED", "is required")
        # Only the canonical spelling: the unique index compares strings, so
        # "ABC…" and "abc…" would otherwise be stored as two events.
        if not is_uuid(raw):
            raise fail(
                "EVENT_ID_INVALID",
                "must be a lowercase UUID such as {example}",
                example="3f2b8c1e-0d4a-4e5f-9a7b-1c2d3e4f5a6b",
            )
        return raw

    @field_validator("action", mode="plain")
    @classmethod
    def _action(cls, raw: str) -> str:
        if not raw:
            raise fail("ACTION_REQUIRED", "is required")
        if not _ACTION.fullmatch(raw):
            raise fail("ACTION_INVALID", 'must be UPPER_SNAKE_CASE such as "LOAN_CREATED"')
        return _bounded(raw)

    @field_validator("resource_type", mode="plain")
    @classmethod
    def _resource_type(cls, raw: str) -> str:
        return _required_word(raw, "RESOURCE_TYPE_REQUIRED")

    @field_validator("source", mode="plain")
    @classmethod
    def _source(cls, raw: str) -> str:
        return _required_word(raw, "SOURCE_REQUIRED")

    @field_validator("occur_time", mode="plain")
    @classmethod
    def _occur_time(cls, raw: str) -> datetime:
        value = _instant(raw)
        if value is None:
            raise fail("OCCUR_TIME_REQUIRED", "is required")
        return value

    @field_validator("organization_ids", mode="after")
    @classmethod
    def _distinct(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(ids)))


class EventFilter(BaseModel):
    """What ListAuditEvents narrows by; empty strings and None match everything."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    resource_type: _Word = ""
    resource_id: _Word = ""
    actor_user_id: _Word = ""
    action: _Word = ""
    occur_time_from: _OptionalInstant = None
    occur_time_to: _OptionalInstant = None  # exclusive
    organization_id: _Word = ""

    def fingerprint(self) -> str:
        """A short digest that ties a page token to the filter that issued it."""
        fields = {name: v.isoformat() if isinstance(v, datetime) else v for name, v in self}
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


# Every reason the validators above raise; any other pydantic error is a bug here.
_REASONS: Final = frozenset(
    {
        "EVENT_ID_REQUIRED",
        "EVENT_ID_INVALID",
        "ACTION_REQUIRED",
        "ACTION_INVALID",
        "RESOURCE_TYPE_REQUIRED",
        "SOURCE_REQUIRED",
        "OCCUR_TIME_REQUIRED",
        "OCCUR_TIME_INVALID",
        "ORGANIZATION_ID_REQUIRED",
        "CHANGE_FIELD_REQUIRED",
        "VALUE_TOO_LONG",
        "VALUE_HAS_CONTROL_CHARACTERS",
        "VALUE_HAS_BIDI_CONTROLS",
        "TRACE_ID_INVALID",
        "SPAN_ID_INVALID",
    }
)


def _form(record: AuditRecord) -> dict[str, Any]:
    return {
        **{name: getattr(record, name) for name in NewAuditEvent.model_fields},
        "organization_ids": tuple(record.organization_ids),
        "changes": [{"field": f, "old_value": o, "new_value": n} for f, o, n in record.changes],
    }


def parse_events(records: Sequence[AuditRecord]) -> list[NewAuditEvent]:
    """Validate one batch; raise ValidationError naming every invalid ``events[i].field``."""
    if len(records) > MAX_BATCH_SIZE:
        raise ValidationError(
            [("events", "BATCH_TOO_LARGE", f"must hold at most {MAX_BATCH_SIZE} events")]
        )
    events: list[NewAuditEvent] = []
    found: list[Violation] = []
    for index, record in enumerate(records):
        try:
            events.append(NewAuditEvent.model_validate(_form(record)))
        except pydantic.ValidationError as exc:
            prefix = f"events[{index}]"
            found += violations(exc, _REASONS, prefix=prefix, aliases=_PROTO_PATHS)
    if found:
        raise ValidationError(found[:_MAX_VIOLATIONS])
    return events


def parse_filter(**fields: str) -> EventFilter:
    """Validate ListAuditEvents' filter; timestamps arrive as ISO 8601 strings or ""."""
    return validated(EventFilter, fields, _REASONS, prefix="filter")


def parse_head(sequence: int, hash_: str, *, prefix: str = "expected_head") -> Head:
    """A head to verify against: a positive sequence and a lowercase hex SHA-256."""
    violations: list[tuple[str, str, str]] = []
    if sequence < 1:
        violations.append((f"{prefix}.sequence", "HEAD_SEQUENCE_INVALID", "must be at least 1"))
    elif sequence > INT64_MAX:  # no log gets there, and no database column holds it
        violations.append(
            (f"{prefix}.sequence", "HEAD_SEQUENCE_OUT_OF_RANGE", f"must be at most {INT64_MAX}")
        )
    if not Head.is_valid_hash(hash_):
        violations.append(
            (f"{prefix}.hash", "HEAD_HASH_INVALID", "must be 64 lowercase hexadecimal digits")
        )
    if violations:
        raise ValidationError(violations)
    return Head(sequence, hash_)


def parse_tail_filter(*, action: str, organization_id: str) -> tuple[str, str]:
    """TailAuditEvents' action and organization, checked as the list filter's are."""
    found: list[tuple[str, str, str]] = []
    for field, raw in (("action", action), ("organization_id", organization_id)):
        try:
            _word(raw)
        except PydanticCustomError as exc:
            found.append((field, exc.type, exc.message()))
    if found:
        raise ValidationError(found)
    return action, organization_id
