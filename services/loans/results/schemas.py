"""Reported result validation: a period of inclusive dates and a value for one KPI."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from services.loans.kpis.schemas import DATE_REASONS, VALUE_REASONS, is_share, parse_value
from services.loans.vocabulary import KpiType
from services.shared.validation import fail, not_after, parse_date, text, validated

__all__ = ["NewResult", "ResultForm", "parse_result"]

_NOTE_MAX: Final = 2000


class ResultForm(BaseModel):
    """A reported result's fields as they travel."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    period_start: str = ""
    period_end: str = ""
    value: str = ""
    note: str = ""


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
        return parse_value(raw, percentage=is_share(info))

    @field_validator("note", mode="plain")
    @classmethod
    def _note(cls, raw: str) -> str:
        return text(raw, reason_prefix="NOTE", limit=_NOTE_MAX, required=False, multiline=True)


_RESULT_REASONS: Final = frozenset(
    {
        *VALUE_REASONS,
        *DATE_REASONS,
        *("PERIOD_END_NOT_AFTER_START", "NOTE_TOO_LONG"),
        *("NOTE_HAS_CONTROL_CHARACTERS", "NOTE_HAS_BIDI_CONTROLS"),
    }
)


def parse_result(fields: Mapping[str, str], *, kpi_type: KpiType) -> NewResult:
    """Validate a result reported for a KPI of kpi_type (a share's value is a percentage)."""
    form = ResultForm(**fields)
    return validated(NewResult, form.model_dump(), _RESULT_REASONS, {"kpi_type": kpi_type})
