"""Field rules every service validates with: stable reasons, proto field paths, one translation.

A rule used inside a pydantic validator raises ``fail(reason, description)``: the
pydantic error type *is* the stable reason, so ``validated`` turns a model's
errors into one ``ValidationError`` of (field, reason, description) by lookup.
Rules checked outside a model (a rejection's reason, an update mask, a request
id) raise ``ValidationError`` themselves.
"""

from __future__ import annotations

import datetime
import enum
import re
import unicodedata
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, Literal, TypeVar

import pydantic
from pydantic import BaseModel, ValidationInfo
from pydantic_core import PydanticCustomError

from services.shared._types import Violation
from services.shared.errors import ValidationError

__all__ = [
    "CURRENCY_DIGITS",
    "INT64_MAX",
    "REQUEST_ID",
    "VALUE_FRACTION_DIGITS",
    "DecimalKind",
    "Violation",
    "apply_mask",
    "check_characters",
    "check_range",
    "check_request_id",
    "fail",
    "format_amount",
    "format_value",
    "is_uuid",
    "member",
    "not_after",
    "parse_date",
    "parse_decimal",
    "parse_reason",
    "text",
    "text_field",
    "validated",
    "violations",
]

DecimalKind = Literal["AMOUNT", "VALUE"]  # the reason prefix: money, or a measured value

# ISO 4217 minor-unit digits: how many fraction digits an amount may carry.
CURRENCY_DIGITS: Final[dict[str, int]] = {
    "AUD": 2,
    "CAD": 2,
    "CHF": 2,
    "CNY": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "INR": 2,
    "JPY": 0,
    "NOK": 2,
    "NZD": 2,
    "SEK": 2,
    "SGD": 2,
    "USD": 2,
}
VALUE_FRACTION_DIGITS: Final = 6  # the scale of the NUMERIC(24, 6) value columns
# 15 integer digits fit NUMERIC(17, 2), and their minor units (x100) fit a 64-bit integer.
_DECIMAL_LIMIT: Final = Decimal(10) ** 15
_PERCENT_MAX: Final = Decimal(100)
_EXAMPLES: Final[dict[DecimalKind, str]] = {"AMOUNT": "1250000.00", "VALUE": "1200.5"}
_REASON_MAX: Final = 1000
_NFC_SLACK: Final = 4  # code points per character that text() reads before normalising

# [0-9], not \d: \d also matches non-ASCII digits such as "١٢٣", which Decimal accepts.
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A UUID as str(uuid.UUID(...)) writes it; a tenth of the cost of parsing one to compare.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Unicode category Cc is exactly C0, DEL and C1. A single-line field refuses all of
# them; a multi-line one keeps tab and line feed (not CR: one newline convention).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Embeddings, overrides and isolates, and the implicit marks: they reorder what a
# reader sees ("Invoice \u202efdp.exe" shows as "Invoice exe.pdf").
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
# SQLite's INTEGER and PostgreSQL's BIGINT are signed 64-bit: a uint64 field can hold more.
INT64_MAX: Final = 2**63 - 1
# Used with fullmatch: "$" would also accept a trailing newline.
REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

E = TypeVar("E", bound=enum.StrEnum)
M = TypeVar("M", bound=BaseModel)
V = TypeVar("V")


def fail(reason: str, description: str, **ctx: Any) -> PydanticCustomError:
    """A validation failure whose error type is the stable reason."""
    return PydanticCustomError(reason, description, ctx or None)


def violations(
    exc: pydantic.ValidationError,
    reasons: frozenset[str],
    *,
    prefix: str = "",
    aliases: Mapping[str, str] | None = None,
) -> list[Violation]:
    """The field violations of a model's errors; an error type not in reasons re-raises exc.

    A field is named by its proto path: ``prefix`` first, nested names joined with
    ".", list positions as ``[i]``; ``aliases`` gives a model field's proto path
    where the two differ (a flat ``actor_role`` for the nested ``actor.role``).
    """
    errors = exc.errors(include_url=False, include_input=False)
    if any(error["type"] not in reasons for error in errors):
        raise exc  # surfaces as INTERNAL: a rule raised a reason its schema does not name
    names = aliases or {}
    return [Violation(_path(prefix, e["loc"], names), e["type"], e["msg"]) for e in errors]


def _path(prefix: str, loc: tuple[int | str, ...], names: Mapping[str, str]) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{names.get(p, p)}" for p in loc)
    return prefix + path if prefix else path.removeprefix(".")


def validated(
    model: type[M],
    data: Mapping[str, Any],
    reasons: frozenset[str],
    context: Any = None,
    *,
    prefix: str = "",
    aliases: Mapping[str, str] | None = None,
) -> M:
    """Validate data with model; its failures become one ValidationError of field violations."""
    try:
        return model.model_validate(data, context=context)
    except pydantic.ValidationError as exc:
        found = violations(exc, reasons, prefix=prefix, aliases=aliases)
        raise ValidationError(found) from None


def member(raw: str, members: type[E], prefix: str, reason: str) -> E:
    """The enum member named by a proto enum name (prefix + member); UNSPECIFIED is missing."""
    if raw in ("", f"{prefix}UNSPECIFIED"):
        raise fail(f"{reason}_REQUIRED", "is required")
    name = raw.removeprefix(prefix)
    if name == raw or name not in members.__members__:
        names = ", ".join(f"{prefix}{m}" for m in members)
        raise fail(f"{reason}_INVALID", "must be one of {names}", names=names)
    return members[name]


def parse_decimal(
    raw: str,
    *,
    reason_prefix: DecimalKind,
    fraction_digits: int | None = None,
    currency: str | None = None,
    default: str | None = None,
    percentage: bool = False,
) -> Decimal:
    """A non-negative plain decimal below 10^15: ASCII digits, no sign, exponent or separator.

    ``fraction_digits`` bounds the fraction; ``currency`` bounds it by the currency's
    minor units instead, and None for both skips the bound (e.g. when the currency
    itself failed). ``default`` stands in for a blank field; ``percentage`` caps at 100.
    """
    if fraction_digits is not None and currency is not None:
        raise ValueError("give fraction_digits or currency, not both")
    p = reason_prefix
    plain = raw.strip() or default
    if plain is None:
        raise fail(f"{p}_REQUIRED", "is required")
    if not _DECIMAL.fullmatch(plain):
        if plain.startswith("-") and _DECIMAL.fullmatch(plain[1:]):
            raise fail(f"{p}_NEGATIVE", "must not be negative")
        example = _EXAMPLES[p]
        raise fail(
            f"{p}_NOT_DECIMAL", 'must be a decimal string such as "{example}"', example=example
        )
    _check_fraction(plain, p, fraction_digits, currency)
    value = Decimal(plain)
    if value >= _DECIMAL_LIMIT:
        raise fail(f"{p}_TOO_LARGE", "must have at most 15 integer digits")
    if percentage and value > _PERCENT_MAX:
        raise fail(f"{p}_NOT_A_PERCENTAGE", "must be a percentage from 0 to 100")
    return value


def _check_fraction(plain: str, p: str, digits: int | None, currency: str | None) -> None:
    if currency is not None:
        digits = CURRENCY_DIGITS[currency]
    if digits is None or len(plain.partition(".")[2]) <= digits:
        return
    if currency is None:
        raise fail(f"{p}_TOO_PRECISE", "must have at most {digits} fraction digits", digits=digits)
    raise fail(
        f"{p}_TOO_PRECISE",
        "must have at most {digits} fraction digits for {currency}",
        digits=digits,
        currency=currency,
    )


def format_amount(value: Decimal, currency_code: str) -> str:
    """Render an amount with exactly the currency's fraction digits and no exponent."""
    digits = CURRENCY_DIGITS.get(currency_code)
    if digits is None:
        raise ValueError(f"unsupported currency {currency_code!r}")
    if not value.is_finite():
        raise ValueError(f"amount {value} is not finite")
    quantized = value.quantize(Decimal(1).scaleb(-digits))
    if quantized != value:
        # Rounding money silently would change it; stored amounts never need it.
        raise ValueError(f"amount {value} has more than {digits} fraction digits")
    return f"{abs(quantized) if quantized.is_zero() else quantized:f}"


def format_value(value: Decimal) -> str:
    """A decimal in its minimal plain form: no exponent, no trailing fraction zeros."""
    if not value.is_finite():
        raise ValueError(f"value {value} is not finite")
    return f"{value.normalize():f}"


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


def check_characters(value: str, *, reason_prefix: str, multiline: bool = False) -> str:
    """Value unchanged, if it holds no control and no bidirectional formatting characters."""
    if (_CONTROL_MULTILINE if multiline else _CONTROL).search(value):
        description = "must not contain control characters"
        if multiline:
            description += " other than tab and newline"
        raise fail(f"{reason_prefix}_HAS_CONTROL_CHARACTERS", description)
    if _BIDI.search(value):
        raise fail(
            f"{reason_prefix}_HAS_BIDI_CONTROLS",
            "must not contain bidirectional formatting characters",
        )
    return value


def text(
    raw: str, *, reason_prefix: str, limit: int, required: bool = True, multiline: bool = False
) -> str:
    """A stripped NFC text field: required (unless not), at most limit characters, none hidden.

    NFC, so that text that looks the same is stored, compared and counted the same,
    however the client's keyboard composed it ("é" as one code point, not "e" + U+0301).
    """
    value = raw.strip()
    if required and not value:
        raise fail(f"{reason_prefix}_REQUIRED", "is required")
    # The limit counts the NFC form, which combining marks make shorter than what was
    # sent; a value far beyond it is refused before it is normalised or scanned.
    too_long = len(value) > _NFC_SLACK * limit
    if not too_long:
        value = unicodedata.normalize("NFC", value)
        too_long = len(value) > limit
    if too_long:
        raise fail(f"{reason_prefix}_TOO_LONG", "must be at most {n} characters", n=limit)
    return check_characters(value, reason_prefix=reason_prefix, multiline=multiline)


def text_field(
    raw: str,
    *,
    field: str,
    reason_prefix: str,
    limit: int,
    required: bool = True,
    multiline: bool = False,
) -> str:
    """``text`` for a field checked outside a model: a failure is a ValidationError on field."""
    try:
        return text(
            raw, reason_prefix=reason_prefix, limit=limit, required=required, multiline=multiline
        )
    except PydanticCustomError as exc:
        raise ValidationError([(field, exc.type, exc.message())]) from None


def parse_reason(raw: str) -> str:
    """A rejection's reason: required, at most 1000 characters, free of hidden characters."""
    return text_field(
        raw, field="reason", reason_prefix="REASON", limit=_REASON_MAX, multiline=True
    )


def apply_mask(
    current: Mapping[str, V], requested: Mapping[str, V], paths: Sequence[str]
) -> dict[str, V]:
    """The current fields, with those the update mask names taken from the request.

    The keys of ``current`` are the paths the mask may name; a path named twice
    counts once.
    """
    if not paths:
        raise ValidationError([("update_mask", "UPDATE_MASK_REQUIRED", "must name a field")])
    unknown = sorted(set(paths) - current.keys())
    if unknown:
        allowed = ", ".join(current)
        description = f"unknown paths {', '.join(unknown)}; allowed: {allowed}"
        raise ValidationError([("update_mask", "UPDATE_MASK_INVALID", description)])
    return {**current, **{path: requested[path] for path in paths}}


def check_request_id(value: str, field: str = "request_id") -> str:
    """A client-chosen request id: 1-128 ASCII letters, digits or ``._:-``."""
    if not REQUEST_ID.fullmatch(value):
        raise ValidationError(
            [(field, "REQUEST_ID_INVALID", "must be 1-128 letters, digits or ._:-")]
        )
    return value


def check_range(value: int, field: str, *, minimum: int = 0, maximum: int = INT64_MAX) -> int:
    """An integer field within [minimum, maximum], checked before it reaches a database.

    Out of range is INVALID_ARGUMENT on field, reason ``<FIELD>_OUT_OF_RANGE`` (the
    last segment of the field's path).
    """
    if not minimum <= value <= maximum:
        reason = f"{field.rsplit('.', 1)[-1].upper()}_OUT_OF_RANGE"
        raise ValidationError([(field, reason, f"must be from {minimum} to {maximum}")])
    return value


def is_uuid(value: str) -> bool:
    """Whether value is a UUID in canonical form, as every id here is."""
    return _CANONICAL_UUID.fullmatch(value) is not None
