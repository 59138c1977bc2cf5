"""CreateLoan validation: a form schema over wire strings and a server schema that coerces."""

from __future__ import annotations

import datetime
import enum
import re
from decimal import Decimal
from typing import Any, Final

import pydantic
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from services.shared.errors import ValidationError

__all__ = [
    "CURRENCY_DIGITS",
    "LoanForm",
    "LoanType",
    "NewLoan",
    "format_amount",
    "parse_new_loan",
]

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

_NAME_MAX_LENGTH: Final = 200
# 15 integer digits fit NUMERIC(17, 2), and their minor units (x100) fit a 64-bit integer.
_AMOUNT_LIMIT: Final = Decimal(10) ** 15
_LOAN_TYPE_PREFIX: Final = "LOAN_TYPE_"

# [0-9], not \d: \d also matches non-ASCII digits such as "١٢٣".
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

_DECIMAL_HINT: Final = 'must be a decimal string such as "1250000.00"'


class LoanType(enum.StrEnum):
    """The kinds of loan; the proto enum name is ``LOAN_TYPE_`` + the value."""

    FIXED_RATE = "FIXED_RATE"
    FLOATING_RATE = "FLOATING_RATE"
    AMORTIZED = "AMORTIZED"
    ANNUITY = "ANNUITY"
    BALLOON = "BALLOON"
    CREDIT_LINE = "CREDIT_LINE"
    REVOLVING_CREDIT_LINE = "REVOLVING_CREDIT_LINE"
    CREDIT_CARD = "CREDIT_CARD"


class LoanForm(BaseModel):
    """CreateLoan fields as they travel: all strings, proto3 defaults of ``""``."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: str = ""
    loan_type: str = ""
    currency_code: str = ""
    principal_amount: str = ""
    committed_amount: str = ""
    drawn_amount: str = ""
    start_date: str = ""
    maturity_date: str = ""


def _fail(reason: str, description: str, **ctx: Any) -> PydanticCustomError:
    # The reason is the error type, so translating a pydantic error is a lookup.
    return PydanticCustomError(reason, description, ctx or None)


def _parse_amount(raw: str, *, default: str | None) -> Decimal:
    text = raw.strip() or default
    if text is None:
        raise _fail("AMOUNT_REQUIRED", "is required")
    if not _DECIMAL.fullmatch(text):
        if text.startswith("-") and _DECIMAL.fullmatch(text[1:]):
            raise _fail("AMOUNT_NEGATIVE", "must not be negative")
        raise _fail("AMOUNT_NOT_DECIMAL", _DECIMAL_HINT)
    value = Decimal(text)
    if value >= _AMOUNT_LIMIT:
        raise _fail("AMOUNT_TOO_LARGE", "must have at most 15 integer digits")
    return value


def _check_precision(text: str, info: ValidationInfo) -> None:
    currency = info.data.get("currency_code")
    if currency is None:  # currency_code itself failed; its violation says so
        return
    _, _, fraction = text.strip().partition(".")
    if len(fraction) > CURRENCY_DIGITS[currency]:
        raise _fail(
            "AMOUNT_TOO_PRECISE",
            "must have at most {digits} fraction digits for {currency}",
            digits=CURRENCY_DIGITS[currency],
            currency=currency,
        )


def _parse_date(raw: str) -> datetime.date:
    if not raw:
        raise _fail("DATE_REQUIRED", "is required")
    if not _DATE.fullmatch(raw):
        raise _fail("DATE_INVALID_FORMAT", 'must be a date such as "2025-06-30"')
    try:
        return datetime.date.fromisoformat(raw)
    except ValueError:
        raise _fail("DATE_DOES_NOT_EXIST", "must be a date that exists") from None


def _exceeds(value: Decimal, info: ValidationInfo, other: str) -> bool:
    # A missing other field failed on its own; comparing against it would add noise.
    limit = info.data.get(other)
    return limit is not None and value > limit


class NewLoan(BaseModel):
    """A valid new loan: stripped name, enum type, Decimal amounts, real dates.

    Validators run in field order and read earlier fields from ``info.data``, so
    cross-field rules sit on the field they name and still run when an unrelated
    field fails (a model-level "after" validator would be skipped then).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    loan_type: LoanType
    currency_code: str
    principal_amount: Decimal
    committed_amount: Decimal
    drawn_amount: Decimal
    start_date: datetime.date
    maturity_date: datetime.date

    @field_validator("name", mode="plain")
    @classmethod
    def _name(cls, raw: str) -> str:
        name = raw.strip()
        if not name:
            raise _fail("NAME_REQUIRED", "is required")
        if len(name) > _NAME_MAX_LENGTH:
            raise _fail("NAME_TOO_LONG", "must be at most {n} characters", n=_NAME_MAX_LENGTH)
        return name

    @field_validator("loan_type", mode="plain")
    @classmethod
    def _loan_type(cls, raw: str) -> LoanType:
        if raw in ("", f"{_LOAN_TYPE_PREFIX}UNSPECIFIED"):
            raise _fail("LOAN_TYPE_REQUIRED", "is required")
        member = raw.removeprefix(_LOAN_TYPE_PREFIX)
        if member == raw or member not in LoanType.__members__:
            raise _fail("LOAN_TYPE_INVALID", 'must be a loan type such as "LOAN_TYPE_FIXED_RATE"')
        return LoanType[member]

    @field_validator("currency_code", mode="plain")
    @classmethod
    def _currency(cls, raw: str) -> str:
        if not raw:
            raise _fail("CURRENCY_REQUIRED", "is required")
        if raw not in CURRENCY_DIGITS:
            raise _fail("CURRENCY_UNSUPPORTED", 'must be a supported ISO 4217 code such as "USD"')
        return raw

    @field_validator("principal_amount", mode="plain")
    @classmethod
    def _principal(cls, raw: str, info: ValidationInfo) -> Decimal:
        value = _parse_amount(raw, default=None)
        if value == 0:
            raise _fail("AMOUNT_NOT_POSITIVE", "must be greater than zero")
        _check_precision(raw, info)
        return value

    @field_validator("committed_amount", mode="plain")
    @classmethod
    def _committed(cls, raw: str, info: ValidationInfo) -> Decimal:
        value = _parse_amount(raw, default="0")
        _check_precision(raw, info)
        if _exceeds(value, info, "principal_amount"):
            raise _fail("COMMITTED_EXCEEDS_PRINCIPAL", "must not exceed principal_amount")
        return value

    @field_validator("drawn_amount", mode="plain")
    @classmethod
    def _drawn(cls, raw: str, info: ValidationInfo) -> Decimal:
        value = _parse_amount(raw, default="0")
        _check_precision(raw, info)
        if _exceeds(value, info, "committed_amount"):
            raise _fail("DRAWN_EXCEEDS_COMMITTED", "must not exceed committed_amount")
        return value

    @field_validator("start_date", mode="plain")
    @classmethod
    def _start(cls, raw: str) -> datetime.date:
        return _parse_date(raw)

    @field_validator("maturity_date", mode="plain")
    @classmethod
    def _maturity(cls, raw: str, info: ValidationInfo) -> datetime.date:
        maturity = _parse_date(raw)
        start = info.data.get("start_date")
        if start is not None and maturity <= start:
            raise _fail("MATURITY_NOT_AFTER_START", "must be after start_date")
        return maturity


# Every reason the validators above raise; any other pydantic error is a bug here.
_REASONS: Final = frozenset(
    {
        "NAME_REQUIRED",
        "NAME_TOO_LONG",
        "LOAN_TYPE_REQUIRED",
        "LOAN_TYPE_INVALID",
        "CURRENCY_REQUIRED",
        "CURRENCY_UNSUPPORTED",
        "AMOUNT_REQUIRED",
        "AMOUNT_NOT_DECIMAL",
        "AMOUNT_NEGATIVE",
        "AMOUNT_NOT_POSITIVE",
        "AMOUNT_TOO_PRECISE",
        "AMOUNT_TOO_LARGE",
        "COMMITTED_EXCEEDS_PRINCIPAL",
        "DRAWN_EXCEEDS_COMMITTED",
        "DATE_REQUIRED",
        "DATE_INVALID_FORMAT",
        "DATE_DOES_NOT_EXIST",
        "MATURITY_NOT_AFTER_START",
    }
)


def _violation(error: ErrorDetails) -> tuple[str, str, str]:
    return str(error["loc"][0]), error["type"], error["msg"]


def parse_new_loan(**fields: str) -> NewLoan:
    """Validate CreateLoan fields; raise ValidationError naming every invalid field."""
    form = LoanForm(**fields)  # wrong keys or types are a caller bug, not a bad request
    try:
        return NewLoan.model_validate(form.model_dump())
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(error["type"] not in _REASONS for error in errors):
            raise  # surfaces as INTERNAL: this module raised something it does not name
        raise ValidationError([_violation(error) for error in errors]) from None


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
