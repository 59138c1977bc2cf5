"""Facility terms on CreateLoan and UpdateLoan, and GetMarginSchedule through the real RPCs."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy import update

from services.loans.models import MarginAdjustment
from services.shared.db import table_of
from tests.loans.database import connected, events
from tests.loans.envelope import INVALID, NOT_FOUND, PRECONDITION, failure
from tests.loans.facility_support import schedule, started_last_year
from tests.loans.factories import MEET, MISS, create_loan, new_loan, update_loan
from tests.loans.journey import Journey, call
from tests.support import Account, Suite

TERMS: dict[str, Any] = {
    "base_margin_bps": 250,
    "reference_rate": pb.REFERENCE_RATE_SONIA,
    "interest_period": pb.INTEREST_PERIOD_QUARTERLY,
    "adjustment_cap_bps": 15,
    "adjustment_floor_bps": -5,
}


def test_a_loan_without_facility_terms_gets_the_defaults(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite.loans, borrower)

    assert (loan.base_margin_bps, loan.reference_rate, loan.interest_period) == (
        0,
        pb.REFERENCE_RATE_FIXED,
        pb.INTEREST_PERIOD_QUARTERLY,
    )
    assert (loan.adjustment_cap_bps, loan.adjustment_floor_bps) == (500, -500)
    assert loan.outstanding_amount == loan.drawn_amount == "250000.50"


def test_facility_terms_are_kept_and_audited(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite.loans, borrower, **TERMS)

    assert {name: getattr(loan, name) for name in TERMS} == TERMS
    [created] = events(suite, loan.id)
    changes = {field: new for field, _, new in created["changes"]}
    assert changes["reference_rate"] == '"REFERENCE_RATE_SONIA"'
    assert (changes["base_margin_bps"], changes["adjustment_floor_bps"]) == ("250", "-5")


@pytest.mark.parametrize(
    ("fields", "violations"),
    [
        ({"base_margin_bps": -1}, {"base_margin_bps": "BPS_OUT_OF_RANGE"}),
        ({"base_margin_bps": 10_001}, {"base_margin_bps": "BPS_OUT_OF_RANGE"}),
        ({"adjustment_cap_bps": 501}, {"adjustment_cap_bps": "BPS_OUT_OF_RANGE"}),
        ({"adjustment_cap_bps": -1}, {"adjustment_cap_bps": "BPS_OUT_OF_RANGE"}),
        ({"adjustment_floor_bps": 1}, {"adjustment_floor_bps": "BPS_OUT_OF_RANGE"}),
        ({"adjustment_floor_bps": -501}, {"adjustment_floor_bps": "BPS_OUT_OF_RANGE"}),
        ({"reference_rate": 99}, {"reference_rate": "REFERENCE_RATE_INVALID"}),
        ({"interest_period": 99}, {"interest_period": "INTEREST_PERIOD_INVALID"}),
        (
            {"interest_period": pb.INTEREST_PERIOD_MONTHLY, "maturity_date": "2127-01-02"},
            {"interest_period": "TOO_MANY_INTEREST_PERIODS"},
        ),
    ],
)
def test_facility_terms_out_of_range_are_refused_naming_the_field(
    suite: Suite, borrower: Account, fields: dict[str, Any], violations: dict[str, str]
) -> None:
    response = create_loan(suite.loans, borrower, **fields)

    code, _, _ = failure(response)
    assert code == INVALID
    assert {
        v.field: v.description for v in response.error.field_violations
    }.keys() == violations.keys()
    assert response.error.reason in violations.values()


def test_the_most_interest_periods_are_accepted(suite: Suite, borrower: Account) -> None:
    loan = new_loan(
        suite.loans,
        borrower,
        interest_period=pb.INTEREST_PERIOD_MONTHLY,
        maturity_date="2127-01-01",  # 1200 months after 2027-01-01
    )

    assert len(schedule(suite.loans, borrower, loan.id).periods) == 1200


def test_a_draft_loans_facility_terms_change_by_update_mask(
    suite: Suite, borrower: Account
) -> None:
    loan = new_loan(suite.loans, borrower, **TERMS)

    response = update_loan(
        suite.loans,
        borrower,
        loan.id,
        paths=["base_margin_bps", "adjustment_cap_bps", "interest_period"],
        base_margin_bps=300,
        interest_period=pb.INTEREST_PERIOD_SEMI_ANNUAL,
    )

    assert response.HasField("loan"), response.error
    updated = response.loan
    # A named optional field left out takes its default.
    assert (updated.base_margin_bps, updated.adjustment_cap_bps) == (300, 500)
    assert updated.interest_period == pb.INTEREST_PERIOD_SEMI_ANNUAL
    assert (updated.reference_rate, updated.adjustment_floor_bps) == (pb.REFERENCE_RATE_SONIA, -5)
    assert len(schedule(suite.loans, borrower, loan.id).periods) == 10  # five years, by halves


def test_facility_terms_change_only_while_the_loan_is_draft(suite: Suite, journey: Journey) -> None:
    at = journey.to("PENDING_APPROVAL")

    response = update_loan(suite.loans, journey.borrower, at.loan.id, base_margin_bps=300)

    assert failure(response)[:2] == (PRECONDITION, "LOAN_NOT_DRAFT")


def test_without_adjustments_every_period_has_the_base_margin(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan = new_loan(suite.loans, borrower, lender, **TERMS)

    found = schedule(suite.loans, lender, loan.id)

    assert (found.loan_id, found.reference_rate, found.base_margin_bps) == (
        loan.id,
        pb.REFERENCE_RATE_SONIA,
        250,
    )
    assert len(found.periods) == 20  # 2027-01-01 to 2032-01-01, quarterly
    assert (found.periods[0].start_date, found.periods[-1].end_date) == ("2027-01-01", "2031-12-31")
    assert {p.all_in_margin_bps for p in found.periods} == {250}


def test_another_organizations_schedule_is_not_found(suite: Suite, borrower: Account) -> None:
    loan = new_loan(suite.loans, borrower)
    stranger = suite.register("BORROWER")

    response = suite.loans.GetMarginSchedule(
        pb.GetMarginScheduleRequest(loan_id=loan.id), metadata=stranger.metadata
    )

    assert failure(response)[:2] == (NOT_FOUND, "LOAN_NOT_FOUND")


@pytest.fixture
def wall_clock(today: Suite) -> Suite:
    """The suite with its business date on the wall clock's, as verifications are dated."""
    today.today.day = datetime.datetime.now(datetime.UTC).date()
    return today


def backdate_adjustments(suite: Suite, loan_id: str, when: datetime.datetime) -> None:
    """Make the loan's adjustments so far look decided at `when`: no call can make the past."""
    table = table_of(MarginAdjustment)
    with connected(suite) as conn:
        conn.execute(update(table).where(table.c.loan_id == loan_id).values(create_time=when))


def test_a_restatement_changes_the_periods_after_it_and_never_those_before(
    wall_clock: Suite, borrower: Account, lender: Account
) -> None:
    suite = wall_clock
    ratchet = {"step_up_bps": 20, "step_down_bps": 10, "cap_bps": 30}
    started = started_last_year(suite.loans, borrower, lender, ratchet, **TERMS)
    loans, loan_id = suite.loans, started.loan.id
    kpi = {"kpi_id": started.kpi.id, **started.first_year}
    missed = call(loans, "ReportKpiResult", borrower, value=MISS, **kpi)
    call(loans, "VerifyKpiResult", lender, kpi_result_id=missed.id)
    last_year = started.loan.start_date[:4]
    backdate_adjustments(
        suite, loan_id, datetime.datetime(int(last_year), 3, 15, tzinfo=datetime.UTC)
    )
    before = schedule(loans, borrower, loan_id)

    restated = call(
        loans, "ReportKpiResult", borrower, value=MEET, restates_result_id=missed.id, **kpi
    )
    call(loans, "VerifyKpiResult", lender, kpi_result_id=restated.id)
    after = schedule(loans, borrower, loan_id)

    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    first = before.periods[0]
    assert (first.start_date, first.all_in_margin_bps) == (f"{last_year}-01-01", 250)
    for old, new in zip(before.periods[1:], after.periods[1:], strict=True):
        # The miss counted from April last year: +20 asked, +15 within the cap.
        assert (old.requested_adjustment_bps, old.all_in_margin_bps) == (20, 265)
        if new.start_date <= today:
            assert new == old  # decided before the restatement: never recomputed
        else:
            # Restated to a pass: +20 gone, -10 asked, -5 within the floor.
            assert (new.requested_adjustment_bps, new.adjustment_bps) == (-10, -5)
            assert new.all_in_margin_bps == 245
    assert after.periods[-1].all_in_margin_bps == 245
