"""The margin schedule as pure computation: interest periods, and the margin in force in each.

Properties are checked against the rules as stated, not against the code's loop:
periods tile start to maturity, every margin stays within base + floor and base +
cap, and an adjustment decided on a day changes no period that starts on or
before that day (so a restatement never rewrites the past).
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.loans.facility.periods import add_months, interest_periods, period_count
from services.loans.facility.schedule import Adjustment, Facility, MarginPeriod, margin_schedule
from services.loans.vocabulary import InterestPeriod

D = datetime.date
DAYS = st.dates(min_value=D(2000, 1, 1), max_value=D(2060, 12, 31))
PERIODS = st.sampled_from(list(InterestPeriod))


START, MATURITY = D(2027, 1, 1), D(2028, 1, 1)


def facility(
    start: datetime.date = START,
    maturity: datetime.date = MATURITY,
    period: InterestPeriod = InterestPeriod.QUARTERLY,
    *,
    base: int = 200,
    cap: int = 500,
    floor: int = -500,
) -> Facility:
    return Facility(start, maturity, period, base, cap, floor)


def schedule(terms: Facility, *adjustments: Adjustment) -> list[MarginPeriod]:
    return list(margin_schedule(terms, adjustments))


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (D(2027, 1, 31), 1, D(2027, 2, 28)),
        (D(2028, 1, 31), 1, D(2028, 2, 29)),
        (D(2027, 1, 31), 2, D(2027, 3, 31)),  # counted from the day, not from February
        (D(2027, 8, 31), 6, D(2028, 2, 29)),
        (D(2027, 11, 15), 3, D(2028, 2, 15)),
    ],
)
def test_a_month_later_is_the_same_day_or_the_months_last(
    day: datetime.date, months: int, expected: datetime.date
) -> None:
    assert add_months(day, months) == expected


def test_quarterly_periods_run_from_start_to_the_day_before_maturity() -> None:
    periods = list(interest_periods(D(2027, 1, 1), D(2028, 2, 15), InterestPeriod.QUARTERLY))

    assert [(p.start.isoformat(), p.end.isoformat()) for p in periods] == [
        ("2027-01-01", "2027-03-31"),
        ("2027-04-01", "2027-06-30"),
        ("2027-07-01", "2027-09-30"),
        ("2027-10-01", "2027-12-31"),
        ("2028-01-01", "2028-02-14"),  # a short last period
    ]


def test_an_adjustment_is_in_force_from_the_first_period_that_starts_after_its_decision() -> None:
    terms = facility()

    margins = [
        p.all_in_margin_bps
        for p in schedule(terms, Adjustment(-10, D(2027, 3, 31)), Adjustment(20, D(2027, 7, 1)))
    ]

    # Decided on 31 March: from April. Decided on 1 July, that period's first day: from October.
    assert margins == [200, 190, 190, 210]


def test_the_sum_of_adjustments_is_kept_within_the_loans_floor_and_cap() -> None:
    terms = facility(cap=15, floor=-5)
    rises = [Adjustment(10, D(2026, 12, 1)), Adjustment(10, D(2027, 2, 1))]
    falls = [Adjustment(-30, D(2027, 5, 1))]

    periods = schedule(terms, *rises, *falls)

    assert [(p.requested_adjustment_bps, p.adjustment_bps) for p in periods] == [
        (10, 10),
        (20, 15),  # capped
        (-10, -5),  # floored
        (-10, -5),
    ]
    assert [p.all_in_margin_bps for p in periods] == [210, 215, 195, 195]


@settings(max_examples=200, deadline=None)
@given(
    start=DAYS,
    length=st.integers(min_value=1, max_value=4000),
    period=PERIODS,
)
def test_periods_tile_start_to_maturity_and_are_counted_exactly(
    start: datetime.date, length: int, period: InterestPeriod
) -> None:
    maturity = start + datetime.timedelta(days=length)

    periods = list(interest_periods(start, maturity, period))

    assert periods[0].start == start
    assert periods[-1].end == maturity - datetime.timedelta(days=1)
    assert all(p.start <= p.end for p in periods)
    assert all(
        a.end + datetime.timedelta(days=1) == b.start for a, b in itertools.pairwise(periods)
    )
    assert len(periods) == period_count(start, maturity, period)


ADJUSTMENTS = st.lists(
    st.builds(Adjustment, st.integers(min_value=-60, max_value=60), DAYS), max_size=12
)


@settings(max_examples=200, deadline=None)
@given(
    start=DAYS,
    years=st.integers(min_value=1, max_value=8),
    period=PERIODS,
    base=st.integers(min_value=0, max_value=1000),
    cap=st.integers(min_value=0, max_value=500),
    floor=st.integers(min_value=-500, max_value=0),
    adjustments=ADJUSTMENTS,
)
def test_every_margin_is_base_plus_the_decided_sum_within_floor_and_cap(
    start: datetime.date,
    years: int,
    period: InterestPeriod,
    base: int,
    cap: int,
    floor: int,
    adjustments: Sequence[Adjustment],
) -> None:
    terms = facility(start, add_months(start, 12 * years), period, base=base, cap=cap, floor=floor)

    for p in schedule(terms, *adjustments):
        decided = sum(a.applied_bps for a in adjustments if a.decided_on < p.start)
        assert p.requested_adjustment_bps == decided
        assert floor <= p.adjustment_bps <= cap
        assert p.all_in_margin_bps == base + max(floor, min(cap, decided))


@settings(max_examples=200, deadline=None)
@given(
    start=DAYS,
    period=PERIODS,
    adjustments=ADJUSTMENTS,
    restatement=st.builds(Adjustment, st.integers(min_value=-60, max_value=60), DAYS),
)
def test_a_later_adjustment_never_changes_a_period_that_started_before_it(
    start: datetime.date,
    period: InterestPeriod,
    adjustments: Sequence[Adjustment],
    restatement: Adjustment,
) -> None:
    terms = facility(start, add_months(start, 60), period, cap=40, floor=-40)

    before = schedule(terms, *adjustments)
    after = schedule(terms, *adjustments, restatement)

    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        if new.start <= restatement.decided_on:
            assert new == old
        else:
            assert new.requested_adjustment_bps == old.requested_adjustment_bps + (
                restatement.applied_bps
            )
