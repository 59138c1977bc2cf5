"""Interest periods: from a loan's start date to its maturity, one every 1, 3 or 6 months.

Periods are counted from the start date, each boundary the start date plus a
whole number of months (the last day of a shorter month when the day does not
exist: a loan starting on 31 January has boundaries on 28 or 29 February, 31
March, 30 April, …). Periods are inclusive dates, as KPI result periods are; the
last one ends the day before maturity.
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Iterator
from typing import Final, NamedTuple

from services.loans.vocabulary import InterestPeriod

__all__ = ["MONTHS", "Period", "add_months", "interest_periods", "period_count"]

MONTHS: Final = {
    InterestPeriod.MONTHLY: 1,
    InterestPeriod.QUARTERLY: 3,
    InterestPeriod.SEMI_ANNUAL: 6,
}
_ONE_DAY: Final = datetime.timedelta(days=1)


class Period(NamedTuple):
    """One interest period: inclusive first and last day."""

    start: datetime.date
    end: datetime.date


def add_months(day: datetime.date, months: int) -> datetime.date:
    """The same day `months` later, or the month's last day when that day does not exist."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return datetime.date(year, month + 1, min(day.day, last))


def period_count(start: datetime.date, maturity: datetime.date, period: InterestPeriod) -> int:
    """How many interest periods lie between start and maturity (start before maturity)."""
    step = MONTHS[period]
    months = (maturity.year - start.year) * 12 + maturity.month - start.month
    count = max(1, -(-months // step))  # whole steps, rounded up
    # The estimate is off by one at most, either way, around the day of the month.
    while count > 1 and _boundary(start, step * (count - 1), maturity) >= maturity:
        count -= 1
    while _boundary(start, step * count, maturity) < maturity:
        count += 1
    return count


def interest_periods(
    start: datetime.date, maturity: datetime.date, period: InterestPeriod
) -> Iterator[Period]:
    """The interest periods from start to maturity, in order; none unless start < maturity."""
    step = MONTHS[period]
    begin, index = start, 1
    while begin < maturity:
        following = _boundary(start, step * index, maturity)
        yield Period(begin, following - _ONE_DAY)
        begin, index = following, index + 1


def _boundary(start: datetime.date, months: int, maturity: datetime.date) -> datetime.date:
    """start plus months, never past maturity; always counted from the start date."""
    try:
        return min(add_months(start, months), maturity)
    except ValueError:  # past the year 9999, so past any maturity
        return maturity
