"""A result's period is one of its KPI's observation periods, inside its window, and ended."""

from __future__ import annotations

from typing import Any

import pytest
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.business_date import on
from tests.loans.envelope import INVALID, PRECONDITION, failure
from tests.loans.factories import report
from tests.loans.journey import Journey
from tests.support import Account, Suite

# Effective 2026-01-01 to 2029-12-31, observed once a year.
ANNUAL: dict[str, Any] = {
    "observation_frequency": pb.OBSERVATION_FREQUENCY_ANNUAL,
    "effective_from": "2026-01-01",
    "effective_to": "2029-12-31",
}


def span(start: str, end: str) -> dict[str, Any]:
    return {"period_start": start, "period_end": end}


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        (
            span("1990-01-01", "1990-12-31"),
            (INVALID, "PERIOD_OUTSIDE_EFFECTIVE_WINDOW", ["period_start"]),
        ),
        (
            span("2099-01-01", "2099-01-02"),
            (INVALID, "PERIOD_OUTSIDE_EFFECTIVE_WINDOW", ["period_end"]),
        ),
        (
            span("2030-01-01", "2030-12-31"),
            (INVALID, "PERIOD_OUTSIDE_EFFECTIVE_WINDOW", ["period_end"]),
        ),
        (
            span("2026-01-01", "2026-03-31"),
            (INVALID, "PERIOD_NOT_AN_OBSERVATION_PERIOD", ["period_end"]),
        ),
        (
            span("2026-02-01", "2027-01-31"),
            (INVALID, "PERIOD_NOT_AN_OBSERVATION_PERIOD", ["period_start"]),
        ),
        (span("2027-01-01", "2027-12-31"), (PRECONDITION, "PERIOD_NOT_ENDED", ["period_end"])),
    ],
)
def test_a_period_off_the_kpis_calendar_is_refused(
    today: Suite, borrower: Account, journey: Journey, period: dict[str, Any], expected: Any
) -> None:
    kpi = journey.to("ACTIVE", **ANNUAL).kpi
    on(today, "2026-11-30")

    assert failure(report(today.loans, borrower, kpi.id, "8000", **period)) == expected


def test_a_period_is_reported_from_its_last_day_on(
    today: Suite, borrower: Account, journey: Journey
) -> None:
    kpi = journey.to("ACTIVE", **ANNUAL).kpi
    year = span("2026-01-01", "2026-12-31")

    on(today, "2026-12-30")
    assert failure(report(today.loans, borrower, kpi.id, "8000", **year))[1] == "PERIOD_NOT_ENDED"
    on(today, "2026-12-31")
    assert report(today.loans, borrower, kpi.id, "8000", **year).HasField("kpi_result")


def test_the_last_period_ends_with_the_window(
    today: Suite, borrower: Account, journey: Journey
) -> None:
    # A window of a year and a half, observed every half year: three whole periods.
    kpi = journey.to(
        "ACTIVE",
        observation_frequency=pb.OBSERVATION_FREQUENCY_SEMI_ANNUAL,
        effective_from="2027-01-31",
        effective_to="2028-07-30",
    ).kpi

    assert report(today.loans, borrower, kpi.id, "1", **span("2027-01-31", "2027-07-30")).HasField(
        "kpi_result"
    )
    assert report(today.loans, borrower, kpi.id, "1", **span("2028-01-31", "2028-07-30")).HasField(
        "kpi_result"
    )
    longer = report(today.loans, borrower, kpi.id, "1", **span("2027-07-31", "2028-01-31"))
    assert failure(longer) == (INVALID, "PERIOD_NOT_AN_OBSERVATION_PERIOD", ["period_end"])
