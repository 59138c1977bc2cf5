"""KPI, margin ratchet and result validation: wire strings in, typed values out.

As in schemas.py, the wire fields arrive as a strict all-strings form, and a
server schema coerces them (enums, Decimal values, real dates) with cross-field
rules on the field they name. Every rule fails with a stable reason and a field
violation named by the proto field. Values are decimals, never floats.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from services.loans.kpi_fields import (
    fail,
    member,
    not_after,
    parse_date,
    parse_value,
    validated,
)

__all__ = [
    "DIRECTION_PREFIX",
    "FREQUENCY_PREFIX",
    "SHARE_TYPES",
    "TYPE_PREFIX",
    "KpiDirection",
    "KpiForm",
    "KpiType",
    "NewKpi",
    "NewResult",
    "ObservationFrequency",
    "RatchetBps",
    "ResultForm",
    "parse_kpi",
    "parse_ratchet",
    "parse_result",
]

# Proto enum names are the prefix + the stored value, e.g. KPI_TYPE_GHG_EMISSIONS.
TYPE_PREFIX: Final = "KPI_TYPE_"
DIRECTION_PREFIX: Final = "KPI_DIRECTION_"
FREQUENCY_PREFIX: Final = "OBSERVATION_FREQUENCY_"

_NAME_MAX: Final = 200
_UNIT_MAX: Final = 40
_NOTE_MAX: Final = 2000
_BPS_MAX: Final = 500


class KpiType(enum.StrEnum):
    GHG_EMISSIONS = "GHG_EMISSIONS"
    EMISSIONS_INTENSITY = "EMISSIONS_INTENSITY"
    ENERGY_CONSUMPTION = "ENERGY_CONSUMPTION"
    WATER_CONSUMPTION = "WATER_CONSUMPTION"
    RENEWABLE_ENERGY_SHARE = "RENEWABLE_ENERGY_SHARE"
    WASTE_RECYCLED_SHARE = "WASTE_RECYCLED_SHARE"
    GENDER_DIVERSITY_SHARE = "GENDER_DIVERSITY_SHARE"
    SAFETY_INCIDENT_RATE = "SAFETY_INCIDENT_RATE"
    CUSTOM = "CUSTOM"


# The value types allowed per KPI type: shares are percentages (unit "%", 0 to 100);
# every other type takes any non-negative decimal.
SHARE_TYPES: Final = frozenset(
    {KpiType.RENEWABLE_ENERGY_SHARE, KpiType.WASTE_RECYCLED_SHARE, KpiType.GENDER_DIVERSITY_SHARE}
)


class KpiDirection(enum.StrEnum):
    LOWER_IS_BETTER = "LOWER_IS_BETTER"
    HIGHER_IS_BETTER = "HIGHER_IS_BETTER"


class ObservationFrequency(enum.StrEnum):
    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    SEMI_ANNUAL = "SEMI_ANNUAL"
    ANNUAL = "ANNUAL"


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


class ResultForm(BaseModel):
    """A reported result's fields as they travel."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    period_start: str = ""
    period_end: str = ""
    value: str = ""
    note: str = ""


def _is_share(info: ValidationInfo) -> bool:
    # A KPI's own type, validated before its values; or, for a result, its KPI's type.
    kpi_type = info.data.get("kpi_type") or (info.context or {}).get("kpi_type")
    return kpi_type in SHARE_TYPES


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
        name = raw.strip()
        if not name:
            raise fail("NAME_REQUIRED", "is required")
        if len(name) > _NAME_MAX:
            raise fail("NAME_TOO_LONG", "must be at most {n} characters", n=_NAME_MAX)
        return name

    @field_validator("kpi_type", mode="plain")
    @classmethod
    def _kpi_type(cls, raw: str) -> KpiType:
        return member(raw, KpiType, TYPE_PREFIX, "KPI_TYPE")

    @field_validator("unit", mode="plain")
    @classmethod
    def _unit(cls, raw: str, info: ValidationInfo) -> str:
        unit = raw.strip()
        if not unit:
            raise fail("UNIT_REQUIRED", "is required")
        if len(unit) > _UNIT_MAX:
            raise fail("UNIT_TOO_LONG", "must be at most {n} characters", n=_UNIT_MAX)
        if _is_share(info) and unit != "%":
            raise fail("UNIT_MUST_BE_PERCENT", 'must be "%" for a share')
        return unit

    @field_validator("direction", mode="plain")
    @classmethod
    def _direction(cls, raw: str) -> KpiDirection:
        return member(raw, KpiDirection, DIRECTION_PREFIX, "DIRECTION")

    @field_validator("baseline_value", mode="plain")
    @classmethod
    def _baseline(cls, raw: str, info: ValidationInfo) -> Decimal:
        return parse_value(raw, percentage=_is_share(info))

    @field_validator("target_value", mode="plain")
    @classmethod
    def _target(cls, raw: str, info: ValidationInfo) -> Decimal:
        value = parse_value(raw, percentage=_is_share(info))
        if value == 0:
            raise fail("TARGET_NOT_POSITIVE", "must be greater than zero")
        return value

    @field_validator("threshold_value", mode="plain")
    @classmethod
    def _threshold(cls, raw: str, info: ValidationInfo) -> Decimal | None:
        return parse_value(raw, percentage=_is_share(info)) if raw.strip() else None

    @field_validator("observation_frequency", mode="plain")
    @classmethod
    def _frequency(cls, raw: str) -> ObservationFrequency:
        return member(raw, ObservationFrequency, FREQUENCY_PREFIX, "FREQUENCY")

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
        return day


class NewResult(BaseModel):
    """A valid reported result: a period of inclusive dates, end after start, and a value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    period_start: datetime.date
    period_end: datetime.date
    value: Decimal
    note: str

    @field_validator("period_start", mode="plain")
    @classmethod
    def _start(cls, raw: str) -> datetime.date:
        return parse_date(raw)

    @field_validator("period_end", mode="plain")
    @classmethod
    def _end(cls, raw: str, info: ValidationInfo) -> datetime.date:
        day = parse_date(raw)
        if not_after(day, info, "period_start"):
            raise fail("PERIOD_END_NOT_AFTER_START", "must be after period_start")
        return day

    @field_validator("value", mode="plain")
    @classmethod
    def _reported(cls, raw: str, info: ValidationInfo) -> Decimal:
        return parse_value(raw, percentage=_is_share(info))

    @field_validator("note", mode="plain")
    @classmethod
    def _note(cls, raw: str) -> str:
        note = raw.strip()
        if len(note) > _NOTE_MAX:
            raise fail("NOTE_TOO_LONG", "must be at most {n} characters", n=_NOTE_MAX)
        return note


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


_VALUE_REASONS: Final = {
    *("VALUE_REQUIRED", "VALUE_NOT_DECIMAL", "VALUE_NEGATIVE", "VALUE_TOO_PRECISE"),
    *("VALUE_TOO_LARGE", "VALUE_NOT_A_PERCENTAGE"),
    *("DATE_REQUIRED", "DATE_INVALID_FORMAT", "DATE_DOES_NOT_EXIST"),
}
# Every reason the validators above raise; any other pydantic error is a bug here.
_KPI_REASONS: Final = frozenset(
    {
        *_VALUE_REASONS,
        *("NAME_REQUIRED", "NAME_TOO_LONG", "KPI_TYPE_REQUIRED", "KPI_TYPE_INVALID"),
        *("UNIT_REQUIRED", "UNIT_TOO_LONG", "UNIT_MUST_BE_PERCENT"),
        *("DIRECTION_REQUIRED", "DIRECTION_INVALID", "FREQUENCY_REQUIRED", "FREQUENCY_INVALID"),
        *("TARGET_NOT_POSITIVE", "EFFECTIVE_TO_NOT_AFTER_FROM"),
    }
)
_RESULT_REASONS: Final = frozenset({*_VALUE_REASONS, "PERIOD_END_NOT_AFTER_START", "NOTE_TOO_LONG"})


def parse_kpi(fields: Mapping[str, str]) -> NewKpi:
    """Validate a KPI's wire fields; raise ValidationError naming every invalid field."""
    form = KpiForm(**fields)  # wrong keys or types are a caller bug, not a bad request
    return validated(NewKpi, form.model_dump(), _KPI_REASONS)


def parse_result(fields: Mapping[str, str], *, kpi_type: str) -> NewResult:
    """Validate a result reported for a KPI of kpi_type (a share's value is a percentage)."""
    form = ResultForm(**fields)
    return validated(NewResult, form.model_dump(), _RESULT_REASONS, {"kpi_type": kpi_type})


def parse_ratchet(bps: Mapping[str, int]) -> RatchetBps:
    """Validate a ratchet's basis points."""
    return validated(RatchetBps, bps, frozenset({"BPS_OUT_OF_RANGE"}))
