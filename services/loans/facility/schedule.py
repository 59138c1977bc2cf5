"""The margin schedule: each interest period's all-in margin, computed from data alone.

A period's margin is the loan's base margin plus the sum of the KPI margin
adjustments in force, that sum kept within the loan's floor and cap. An
adjustment is in force from the first interest period that starts after the
day it was decided (the verification of a result, or the due date of a missed
report), and in every period after: the periods before never change, so a
restatement, whose verification is a new adjustment, recomputes only the
periods after it. Each adjustment is a KPI's change of its own running total
(``applied_bps``), so the sum of those in force is the sum of the KPIs' totals
at that point.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from services.loans.facility.periods import interest_periods
from services.loans.vocabulary import InterestPeriod

__all__ = ["Adjustment", "Facility", "MarginPeriod", "margin_schedule"]


@dataclass(frozen=True)
class Facility:
    """The terms a schedule follows."""

    start: datetime.date
    maturity: datetime.date
    interest_period: InterestPeriod
    base_margin_bps: int
    adjustment_cap_bps: int  # >= 0
    adjustment_floor_bps: int  # <= 0


@dataclass(frozen=True)
class Adjustment:
    """A change of the sum of KPI adjustments, and the day it was decided."""

    applied_bps: int
    decided_on: datetime.date


@dataclass(frozen=True)
class MarginPeriod:
    """One interest period (inclusive dates) and its margin."""

    start: datetime.date
    end: datetime.date
    base_margin_bps: int
    requested_adjustment_bps: int  # the sum in force, before the floor and cap
    adjustment_bps: int  # within them

    @property
    def all_in_margin_bps(self) -> int:
        return self.base_margin_bps + self.adjustment_bps


def margin_schedule(
    facility: Facility, adjustments: Iterable[Adjustment]
) -> Iterator[MarginPeriod]:
    """The facility's interest periods in order, each with the margin in force in it."""
    pending = sorted(adjustments, key=lambda adjustment: adjustment.decided_on)
    taken, requested = 0, 0
    for period in interest_periods(facility.start, facility.maturity, facility.interest_period):
        # In force once decided before the period starts: a decision on its first day is late.
        while taken < len(pending) and pending[taken].decided_on < period.start:
            requested += pending[taken].applied_bps
            taken += 1
        within = max(facility.adjustment_floor_bps, min(facility.adjustment_cap_bps, requested))
        yield MarginPeriod(period.start, period.end, facility.base_margin_bps, requested, within)
