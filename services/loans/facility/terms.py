"""A loan's facility terms as the loan schema validates them, and as audit events record them.

The terms travel on CreateLoan and UpdateLoan with the loan's other terms, so a
loan is validated as one whole (UpdateLoan merges the mask into the stored
loan, then validates everything). Every term has a default, so a client that
never sends them creates the loan it always did: no base margin, a fixed rate,
quarterly interest, and KPI adjustments that may move the margin ±500 bps.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from services.loans.facility.periods import period_count
from services.loans.vocabulary import InterestPeriod, ReferenceRate
from services.shared.validation import fail, member

if TYPE_CHECKING:
    from services.loans.models import Loan

__all__ = [
    "FACILITY_FIELDS",
    "FACILITY_REASONS",
    "MAX_INTEREST_PERIODS",
    "facility_described",
    "facility_form",
    "parse_adjustment_cap",
    "parse_adjustment_floor",
    "parse_base_margin",
    "parse_interest_period",
    "parse_reference_rate",
]

# The facility terms' update_mask paths, in the order the loan schema validates them.
FACILITY_FIELDS: Final = (
    "base_margin_bps",
    "reference_rate",
    "interest_period",
    "adjustment_cap_bps",
    "adjustment_floor_bps",
)
BASE_MARGIN_MAX: Final = 10_000  # 100 %: a margin beyond it is a typing mistake
ADJUSTMENT_LIMIT: Final = 500  # as a ratchet's cap: the most KPIs may move the margin
# 100 years of monthly periods: the schedule of any real loan, and a bound on its size.
MAX_INTEREST_PERIODS: Final = 1200
FACILITY_REASONS: Final = frozenset(
    {
        "BPS_NOT_AN_INTEGER",
        "BPS_OUT_OF_RANGE",
        "REFERENCE_RATE_INVALID",
        "INTEREST_PERIOD_INVALID",
        "TOO_MANY_INTEREST_PERIODS",
    }
)


def facility_form(loan: Loan) -> dict[str, str]:
    """The stored facility terms as the wire carries them (numbers as their digits)."""
    return {
        "base_margin_bps": str(loan.base_margin_bps),
        "reference_rate": loan.reference_rate.wire,
        "interest_period": loan.interest_period.wire,
        "adjustment_cap_bps": str(loan.adjustment_cap_bps),
        "adjustment_floor_bps": str(loan.adjustment_floor_bps),
    }


def facility_described(loan: Loan) -> Mapping[str, int | ReferenceRate | InterestPeriod]:
    """What audit events record of the facility terms: numbers as numbers, enums by name."""
    return {
        "base_margin_bps": loan.base_margin_bps,
        "reference_rate": loan.reference_rate,
        "interest_period": loan.interest_period,
        "adjustment_cap_bps": loan.adjustment_cap_bps,
        "adjustment_floor_bps": loan.adjustment_floor_bps,
    }


def _bps(raw: str, *, default: int, low: int, high: int) -> int:
    # The form carries proto int32s as their digits; "" is an optional field left out.
    try:
        value = default if raw == "" else int(raw)
    except ValueError:
        raise fail("BPS_NOT_AN_INTEGER", "must be a whole number of basis points") from None
    if not low <= value <= high:
        raise fail(
            "BPS_OUT_OF_RANGE", "must be from {low} to {high} basis points", low=low, high=high
        )
    return value


def parse_base_margin(raw: str) -> int:
    """The base margin: 0 to 10000 bps, 0 when left out."""
    return _bps(raw, default=0, low=0, high=BASE_MARGIN_MAX)


def parse_adjustment_cap(raw: str) -> int:
    """The most the KPI adjustments may add together: 0 to 500 bps, 500 when left out."""
    return _bps(raw, default=ADJUSTMENT_LIMIT, low=0, high=ADJUSTMENT_LIMIT)


def parse_adjustment_floor(raw: str) -> int:
    """The most they may take off, as a negative number: -500 to 0 bps, -500 when left out."""
    return _bps(raw, default=-ADJUSTMENT_LIMIT, low=-ADJUSTMENT_LIMIT, high=0)


def parse_reference_rate(raw: str) -> ReferenceRate:
    """The reference rate by its proto name; FIXED when left out."""
    if raw in ("", f"{ReferenceRate.prefix()}UNSPECIFIED"):
        return ReferenceRate.FIXED
    return member(raw, ReferenceRate, ReferenceRate.prefix(), "REFERENCE_RATE")


def parse_interest_period(
    raw: str, start: datetime.date | None, maturity: datetime.date | None
) -> InterestPeriod:
    """The interest period by its proto name (QUARTERLY when left out), within the bound."""
    period = InterestPeriod.QUARTERLY
    if raw not in ("", f"{InterestPeriod.prefix()}UNSPECIFIED"):
        period = member(raw, InterestPeriod, InterestPeriod.prefix(), "INTEREST_PERIOD")
    if start is None or maturity is None or start >= maturity:
        return period  # dates that failed on their own have their own violations
    if period_count(start, maturity, period) > MAX_INTEREST_PERIODS:
        raise fail(
            "TOO_MANY_INTEREST_PERIODS",
            "gives more than {n} interest periods before maturity_date",
            n=MAX_INTEREST_PERIODS,
        )
    return period
