"""A KPI's observation periods: from its effective_from, one every 1, 3, 6 or 12 months.

Periods are inclusive dates counted from effective_from, each boundary a whole
number of months after it (the month's last day when the day does not exist);
the last period ends on effective_to, shorter if the window is not a whole
number of periods. A period's result is due ``grace_days`` after its end.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Final, NamedTuple

from services.loans.facility.periods import add_months
from services.loans.vocabulary import ObservationFrequency

__all__ = ["MONTHS", "ObservationPeriod", "due_date", "observation_periods", "period_of"]

MONTHS: Final = {
    ObservationFrequency.MONTHLY: 1,
    ObservationFrequency.QUARTERLY: 3,
    ObservationFrequency.SEMI_ANNUAL: 6,
    ObservationFrequency.ANNUAL: 12,
}
_ONE_DAY: Final = datetime.timedelta(days=1)


class ObservationPeriod(NamedTuple):
    """One observation period of a KPI: inclusive first and last day."""

    start: datetime.date
    end: datetime.date


def observation_periods(
    frequency: ObservationFrequency,
    effective_from: datetime.date,
    effective_to: datetime.date,
    *,
    ending_by: datetime.date | None = None,
) -> Iterator[ObservationPeriod]:
    """The periods of the window in order; with ending_by, only those ending on or before it."""
    step = MONTHS[frequency]
    begin, index = effective_from, 1
    while begin <= effective_to:
        try:
            following = add_months(effective_from, step * index)
        except ValueError:  # past the year 9999: the window ends first
            following = effective_to + _ONE_DAY
        end = min(following - _ONE_DAY, effective_to)
        if ending_by is not None and end > ending_by:
            return
        yield ObservationPeriod(begin, end)
        begin, index = following, index + 1


def period_of(
    frequency: ObservationFrequency,
    effective_from: datetime.date,
    effective_to: datetime.date,
    start: datetime.date,
) -> ObservationPeriod | None:
    """The observation period that begins on start, if one does."""
    for period in observation_periods(frequency, effective_from, effective_to, ending_by=None):
        if period.start >= start:
            return period if period.start == start else None
    return None


def due_date(period: ObservationPeriod, grace_days: int) -> datetime.date:
    """The day by which the period's result must be reported and verified."""
    try:
        return period.end + datetime.timedelta(days=grace_days)
    except OverflowError:  # past the year 9999: never due
        return datetime.date.max
