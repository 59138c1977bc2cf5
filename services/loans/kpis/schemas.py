"""KPI and margin ratchet validation: wire strings in, typed values out.

The wire fields arrive as a strict all-strings form, and a server schema
coerces them (enums, Decimal values, real dates) with cross-field rules on the
field they name. Every rule fails with a stable reason and a field violation
named by the proto field. Values are decimals, never floats.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from services.loans.facility.periods import add_months
from services.loans.vocabulary import SHARE_TYPES, KpiDirection, KpiType, ObservationFrequency
from services.shared.validation import (
    VALUE_FRACTION_DIGITS,
    fail,
    member,
    not_after,
    parse_date,
    parse_decimal,
    text,
    validated,
)

__all__ = [
    "DATE_REASONS",
    "VALUE_REASONS",
    "KpiForm",
    "NewKpi",
    "RatchetBps",
    "is_share",
    "parse_kpi",
    "parse_ratchet",
    "parse_value",
]

_NAME_MAX: Final = 200
_UNIT_MAX: Final = 40
_BPS_MAX: Final = 500
# Years a KPI's effective window may span: its reporting calendar stays a few hundred periods.
_WINDOW_YEARS: Final = 50


class KpiForm(BaseModel):
    """A KPI's fields as they travel: all strings, enums by proto name, proto3 defaults ``""``."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    name: str = ""
    kpi_type: str = ""
    unit: str = ""
    direction: str = ""
    baseline_value: str = ""
    target_value: str = ""
    threshold_value: str = ""
    observation_frequency: str = ""
    effective_from: str = ""
    effective_to: str = ""


def is_share(info: ValidationInfo) -> bool:
    """Whether the value is a percentage: of a share KPI's own type, or (results) its KPI's."""
    kpi_type = info.data.get("kpi_type") or (info.context or {}).get("kpi_type")
    return kpi_type in SHARE_TYPES


def parse_value(raw: str, *, percentage: bool) -> Decimal:
    """A KPI value: a non-negative decimal with at most six fraction digits."""
    return parse_decimal(
        raw, reason_prefix="VALUE", fraction_digits=VALUE_FRACTION_DIGITS, percentage=percentage
    )


class NewKpi(BaseModel):
    """A valid KPI: enums, Decimal values (threshold optional), real effective dates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kpi_type: KpiType
    unit: str
    direction: KpiDirection
    baseline_value: Decimal
    target_value: Decimal
    threshold_value: Decimal | None
    observation_frequency: ObservationFrequency
    effective_from: datetime.date
    effective_to: datetime.date

    @field_validator("name", mode="plain")
    @classmethod
    def _name(cls, raw: str) -> str:
        return text(raw, reason_prefix="NAME", limit=_NAME_MAX)

    @field_validator("kpi_type", mode="plain")
    @classmethod
    def _kpi_type(cls, raw: str) -> KpiType:
        return member(raw, KpiType, KpiType.prefix(), "KPI_TYPE")

    @field_validator("unit", mode="plain")
    @classmethod
    def _unit(cls, raw: str, info: ValidationInfo) -> str:
        unit = text(raw, reason_prefix="UNIT", limit=_UNIT_MAX)
        if is_share(info) and unit != "%":
            raise fail("UNIT_MUST_BE_PERCENT", 'must be "%" for a share')
        return unit

    @field_validator("direction", mode="plain")
    @classmethod
    def _direction(cls, raw: str) -> KpiDirection:
        return member(raw, KpiDirection, KpiDirection.prefix(), "DIRECTION")

    @field_validator("baseline_value", mode="plain")
    @classmethod
    def _baseline(cls, raw: str, info: ValidationInfo) -> Decimal:
        return parse_value(raw, percentage=is_share(info))

    @field_validator("target_value", mode="plain")
    @classmethod
    def _target(cls, raw: str, info: ValidationInfo) -> Decimal:
        value = parse_value(raw, percentage=is_share(info))
        if value == 0:
            raise fail("TARGET_NOT_POSITIVE", "must be greater than zero")
        return value

    @field_validator("threshold_value", mode="plain")
    @classmethod
    def _threshold(cls, raw: str, info: ValidationInfo) -> Decimal | None:
        return parse_value(raw, percentage=is_share(info)) if raw.strip() else None

    @field_validator("observation_frequency", mode="plain")
    @classmethod
    def _frequency(cls, raw: str) -> ObservationFrequency:
        return member(raw, ObservationFrequency, ObservationFrequency.prefix(), "FREQUENCY")

    @field_validator("effective_from", mode="plain")
    @classmethod
    def _from(cls, raw: str) -> datetime.date:
        return parse_date(raw)

    @field_validator("effective_to", mode="plain")
    @classmethod
    def _to(cls, raw: str, info: ValidationInfo) -> datetime.date:
        day = parse_date(raw)
        if not_after(day, info, "effective_from"):
            raise fail("EFFECTIVE_TO_NOT_AFTER_FROM", "must be after effective_from")
        start = info.data.get("effective_from")
        if start is not None and _too_long(start, day):
            raise fail(
                "EFFECTIVE_WINDOW_TOO_LONG",
                "must be at most {n} years after effective_from",
                n=_WINDOW_YEARS,
            )
        return day


def _too_long(start: datetime.date, end: datetime.date) -> bool:
    try:
        return end > add_months(start, 12 * _WINDOW_YEARS)
    except ValueError:  # the limit is past the year 9999, so past any date
        return False


class RatchetBps(BaseModel):
    """A ratchet's basis points, each from 0 to 500."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    step_up_bps: int
    step_down_bps: int
    cap_bps: int

    @field_validator("step_up_bps", "step_down_bps", "cap_bps", mode="after")
    @classmethod
    def _bps(cls, bps: int) -> int:
        if not 0 <= bps <= _BPS_MAX:
            raise fail("BPS_OUT_OF_RANGE", "must be from 0 to {n} basis points", n=_BPS_MAX)
        return bps


DATE_REASONS: Final = frozenset({"DATE_REQUIRED", "DATE_INVALID_FORMAT", "DATE_DOES_NOT_EXIST"})
VALUE_REASONS: Final = frozenset(
    {
        *("VALUE_REQUIRED", "VALUE_NOT_DECIMAL", "VALUE_NEGATIVE", "VALUE_TOO_PRECISE"),
        *("VALUE_TOO_LARGE", "VALUE_NOT_A_PERCENTAGE"),
    }
)
# Every reason the validators above raise; any other pydantic error is a bug here.
_KPI_REASONS: Final = frozenset(
    {
        *VALUE_REASONS,
        *DATE_REASONS,
        *(
            "NAME_REQUIRED",
            "NAME_TOO_LONG",
            "NAME_HAS_CONTROL_CHARACTERS",
            "NAME_HAS_BIDI_CONTROLS",
        ),
        *(
            "UNIT_REQUIRED",
            "UNIT_TOO_LONG",
            "UNIT_HAS_CONTROL_CHARACTERS",
            "UNIT_HAS_BIDI_CONTROLS",
        ),
        *("UNIT_MUST_BE_PERCENT", "KPI_TYPE_REQUIRED", "KPI_TYPE_INVALID"),
        *("DIRECTION_REQUIRED", "DIRECTION_INVALID", "FREQUENCY_REQUIRED", "FREQUENCY_INVALID"),
        *("TARGET_NOT_POSITIVE", "EFFECTIVE_TO_NOT_AFTER_FROM", "EFFECTIVE_WINDOW_TOO_LONG"),
    }
)


def parse_kpi(fields: Mapping[str, str]) -> NewKpi:
    """Validate a KPI's wire fields; raise ValidationError naming every invalid field."""
    form = KpiForm(**fields)  # wrong keys or types are a caller bug, not a bad request
    return validated(NewKpi, form.model_dump(), _KPI_REASONS)


def parse_ratchet(bps: Mapping[str, int]) -> RatchetBps:
    """Validate a ratchet's basis points."""
    return validated(RatchetBps, bps, frozenset({"BPS_OUT_OF_RANGE"}))
