"""A movement of money as a client sends it: an amount in the loan's currency and a note."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from services.shared.validation import fail, parse_decimal, text, validated

__all__ = ["Movement", "parse_movement"]

_NOTE_MAX: Final = 2000


class MovementForm(BaseModel):
    """A drawdown request's or a repayment's fields as they travel."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    amount: str = ""
    note: str = ""


class Movement(BaseModel):
    """A valid movement: a positive amount with the currency's fraction digits, a clean note."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: Decimal
    note: str

    @field_validator("amount", mode="plain")
    @classmethod
    def _amount(cls, raw: str, info: ValidationInfo) -> Decimal:
        currency: str = (info.context or {})["currency_code"]
        value = parse_decimal(raw, reason_prefix="AMOUNT", currency=currency)
        if value == 0:
            raise fail("AMOUNT_NOT_POSITIVE", "must be greater than zero")
        return value

    @field_validator("note", mode="plain")
    @classmethod
    def _note(cls, raw: str) -> str:
        return text(raw, reason_prefix="NOTE", limit=_NOTE_MAX, required=False, multiline=True)


_REASONS: Final = frozenset(
    {
        *("AMOUNT_REQUIRED", "AMOUNT_NOT_DECIMAL", "AMOUNT_NEGATIVE", "AMOUNT_NOT_POSITIVE"),
        *("AMOUNT_TOO_PRECISE", "AMOUNT_TOO_LARGE"),
        *("NOTE_TOO_LONG", "NOTE_HAS_CONTROL_CHARACTERS", "NOTE_HAS_BIDI_CONTROLS"),
    }
)


def parse_movement(fields: Mapping[str, str], *, currency_code: str) -> Movement:
    """Validate an amount in currency_code and a note; violations name amount and note."""
    form = MovementForm(**fields)
    return validated(Movement, form.model_dump(), _REASONS, {"currency_code": currency_code})
