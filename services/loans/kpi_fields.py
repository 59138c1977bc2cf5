"""Field rules of the KPI, ratchet and result RPCs: enums, values, dates, masks, reasons.

Each rule raises a pydantic error whose type is the stable reason, so that
``validated`` can turn pydantic's errors into field violations by lookup.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, TypeVar

import pydantic
from pydantic import BaseModel, ValidationInfo
from pydantic_core import PydanticCustomError

from services.shared.errors import ValidationError

__all__ = [
    "FRACTION_DIGITS",
    "apply_mask",
    "fail",
    "format_value",
    "member",
    "not_after",
    "parse_date",
    "parse_reason",
    "parse_value",
    "validated",
]

FRACTION_DIGITS: Final = 6  # the scale of the NUMERIC(24, 6) value columns
_VALUE_LIMIT: Final = Decimal(10) ** 15
_PERCENT_MAX: Final = Decimal(100)
_REASON_MAX: Final = 1000

# [0-9], not \d: \d also matches non-ASCII digits such as "١٢٣".
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

E = TypeVar("E", bound=enum.StrEnum)
M = TypeVar("M", bound=BaseModel)
V = TypeVar("V")


def fail(reason: str, description: str, **ctx: Any) -> PydanticCustomError:
    """A validation failure whose error type is the stable reason."""
    return PydanticCustomError(reason, description, ctx or None)


def member(raw: str, members: type[E], prefix: str, reason: str) -> E:
    """The enum member named by a proto enum name (prefix + member); UNSPECIFIED is missing."""
    if raw in ("", f"{prefix}UNSPECIFIED"):
        raise fail(f"{reason}_REQUIRED", "is required")
    name = raw.removeprefix(prefix)
    if name == raw or name not in members.__members__:
        names = ", ".join(f"{prefix}{m}" for m in members)
        raise fail(f"{reason}_INVALID", "must be one of {names}", names=names)
    return members[name]


def parse_value(raw: str, *, percentage: bool) -> Decimal:
    """A non-negative plain decimal with at most six fraction digits (and ≤ 100 for a share)."""
    text = raw.strip()
    if not text:
        raise fail("VALUE_REQUIRED", "is required")
    if not _DECIMAL.fullmatch(text):
        if text.startswith("-") and _DECIMAL.fullmatch(text[1:]):
            raise fail("VALUE_NEGATIVE", "must not be negative")
        raise fail("VALUE_NOT_DECIMAL", 'must be a decimal string such as "1200.5"')
    if len(text.partition(".")[2]) > FRACTION_DIGITS:
        raise fail("VALUE_TOO_PRECISE", "must have at most {n} fraction digits", n=FRACTION_DIGITS)
    value = Decimal(text)
    if value >= _VALUE_LIMIT:
        raise fail("VALUE_TOO_LARGE", "must have at most 15 integer digits")
    if percentage and value > _PERCENT_MAX:
        raise fail("VALUE_NOT_A_PERCENTAGE", "must be a percentage from 0 to 100")
    return value


def parse_date(raw: str) -> datetime.date:
    """A business date "YYYY-MM-DD" that exists."""
    if not raw:
        raise fail("DATE_REQUIRED", "is required")
    if not _DATE.fullmatch(raw):
        raise fail("DATE_INVALID_FORMAT", 'must be a date such as "2025-06-30"')
    try:
        return datetime.date.fromisoformat(raw)
    except ValueError:
        raise fail("DATE_DOES_NOT_EXIST", "must be a date that exists") from None


def not_after(day: datetime.date, info: ValidationInfo, earlier: str) -> bool:
    """Whether day is on or before the earlier date field validated before it."""
    # A missing earlier date failed on its own; comparing against it would add noise.
    start = info.data.get(earlier)
    return start is not None and day <= start


def validated(
    model: type[M], data: Mapping[str, Any], reasons: frozenset[str], context: Any = None
) -> M:
    """Validate data with model; its failures become one ValidationError of field violations."""
    try:
        return model.model_validate(data, context=context)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(error["type"] not in reasons for error in errors):
            raise  # surfaces as INTERNAL: a rule raised a reason its schema does not name
        raise ValidationError(
            [(str(error["loc"][0]), error["type"], error["msg"]) for error in errors]
        ) from None


def format_value(value: Decimal) -> str:
    """A decimal in its minimal plain form: no exponent, no trailing fraction zeros."""
    if not value.is_finite():
        raise ValueError(f"value {value} is not finite")
    return f"{value.normalize():f}"


def parse_reason(raw: str) -> str:
    """A rejection's reason: required, at most 1000 characters."""
    reason = raw.strip()
    if not reason:
        raise ValidationError([("reason", "REASON_REQUIRED", "is required")])
    if len(reason) > _REASON_MAX:
        description = f"must be at most {_REASON_MAX} characters"
        raise ValidationError([("reason", "REASON_TOO_LONG", description)])
    return reason


def apply_mask(
    current: Mapping[str, V], requested: Mapping[str, V], paths: Sequence[str]
) -> dict[str, V]:
    """The current fields, with those the update mask names taken from the request."""
    if not paths:
        raise ValidationError([("update_mask", "UPDATE_MASK_REQUIRED", "must name a field")])
    unknown = sorted(set(paths) - current.keys())
    if unknown:
        allowed = ", ".join(current)
        description = f"unknown paths {', '.join(unknown)}; allowed: {allowed}"
        raise ValidationError([("update_mask", "UPDATE_MASK_INVALID", description)])
    return {**current, **{path: requested[path] for path in paths}}
