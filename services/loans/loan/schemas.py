"""Loan terms validation: a form schema over wire strings and a server schema that coerces."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from services.loans.calendar import terms as reporting
from services.loans.facility import terms as facility
from services.loans.vocabulary import InterestPeriod, LoanType, ReferenceRate
from services.shared.validation import (
    CURRENCY_DIGITS,
    fail,
    format_amount,
    member,
    parse_date,
    parse_decimal,
    text,
    validated,
)

__all__ = [
    "CURRENCY_DIGITS",
    "LoanForm",
    "LoanType",
    "NewLoan",
    "format_amount",
    "parse_new_loan",
]

_NAME_MAX_LENGTH: Final = 200


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
    # Facility terms (facility/terms.py): numbers as their digits, "" for one left out.
    base_margin_bps: str = ""
    reference_rate: str = ""
    interest_period: str = ""
    adjustment_cap_bps: str = ""
    adjustment_floor_bps: str = ""
    # Reporting terms (calendar/terms.py), the same way.
    reporting_grace_days: str = ""


def _amount(raw: str, info: ValidationInfo, *, default: str | None) -> Decimal:
    # A failed currency_code has its own violation; the fraction is then left unchecked.
    currency = info.data.get("currency_code")
    return parse_decimal(raw, reason_prefix="AMOUNT", currency=currency, default=default)


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
    base_margin_bps: int
    reference_rate: ReferenceRate
    interest_period: InterestPeriod
    adjustment_cap_bps: int
    adjustment_floor_bps: int
    reporting_grace_days: int

    @field_validator("name", mode="plain")
    @classmethod
    def _name(cls, raw: str) -> str:
        return text(raw, reason_prefix="NAME", limit=_NAME_MAX_LENGTH)

    @field_validator("loan_type", mode="plain")
    @classmethod
    def _loan_type(cls, raw: str) -> LoanType:
        return member(raw, LoanType, LoanType.prefix(), "LOAN_TYPE")

    @field_validator("currency_code", mode="plain")
    @classmethod
    def _currency(cls, raw: str) -> str:
        if not raw:
            raise fail("CURRENCY_REQUIRED", "is required")
        if raw not in CURRENCY_DIGITS:
            raise fail("CURRENCY_UNSUPPORTED", 'must be a supported ISO 4217 code such as "USD"')
        return raw

    @field_validator("principal_amount", mode="plain")
    @classmethod
    def _principal(cls, raw: str, info: ValidationInfo) -> Decimal:
        value = _amount(raw, info, default=None)
        if value == 0:
            raise fail("AMOUNT_NOT_POSITIVE", "must be greater than zero")
        return value

    @field_validator("committed_amount", mode="plain")
    @classmethod
    def _committed(cls, raw: str, info: ValidationInfo) -> Decimal:
        value = _amount(raw, info, default="0")
        if _exceeds(value, info, "principal_amount"):
            raise fail("COMMITTED_EXCEEDS_PRINCIPAL", "must not exceed principal_amount")
        return value

    @field_validator("drawn_amount", mode="plain")
    @classmethod
    def _drawn(cls, raw: str, info: ValidationInfo) -> Decimal:
        value = _amount(raw, info, default="0")
        if _exceeds(value, info, "committed_amount"):
            raise fail("DRAWN_EXCEEDS_COMMITTED", "must not exceed committed_amount")
        return value

    @field_validator("start_date", mode="plain")
    @classmethod
    def _start(cls, raw: str) -> datetime.date:
        return parse_date(raw)

    @field_validator("maturity_date", mode="plain")
    @classmethod
    def _maturity(cls, raw: str, info: ValidationInfo) -> datetime.date:
        maturity = parse_date(raw)
        start = info.data.get("start_date")
        if start is not None and maturity <= start:
            raise fail("MATURITY_NOT_AFTER_START", "must be after start_date")
        return maturity

    @field_validator("base_margin_bps", mode="plain")
    @classmethod
    def _base_margin(cls, raw: str) -> int:
        return facility.parse_base_margin(raw)

    @field_validator("reference_rate", mode="plain")
    @classmethod
    def _reference_rate(cls, raw: str) -> ReferenceRate:
        return facility.parse_reference_rate(raw)

    @field_validator("interest_period", mode="plain")
    @classmethod
    def _interest_period(cls, raw: str, info: ValidationInfo) -> InterestPeriod:
        dates = info.data.get("start_date"), info.data.get("maturity_date")
        return facility.parse_interest_period(raw, *dates)

    @field_validator("adjustment_cap_bps", mode="plain")
    @classmethod
    def _adjustment_cap(cls, raw: str) -> int:
        return facility.parse_adjustment_cap(raw)

    @field_validator("adjustment_floor_bps", mode="plain")
    @classmethod
    def _adjustment_floor(cls, raw: str) -> int:
        return facility.parse_adjustment_floor(raw)

    @field_validator("reporting_grace_days", mode="plain")
    @classmethod
    def _reporting_grace(cls, raw: str) -> int:
        return reporting.parse_reporting_grace(raw)


# Every reason the validators above raise; any other pydantic error is a bug here.
_REASONS: Final = frozenset(
    {
        "NAME_REQUIRED",
        "NAME_TOO_LONG",
        "NAME_HAS_CONTROL_CHARACTERS",
        "NAME_HAS_BIDI_CONTROLS",
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
        *facility.FACILITY_REASONS,
        *reporting.REPORTING_REASONS,
    }
)


def parse_new_loan(**fields: str) -> NewLoan:
    """Validate CreateLoan fields; raise ValidationError naming every invalid field."""
    form = LoanForm(**fields)  # wrong keys or types are a caller bug, not a bad request
    return validated(NewLoan, form.model_dump(), _REASONS)
