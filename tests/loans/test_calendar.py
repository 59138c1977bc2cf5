"""The reporting calendar: periods, due dates, statuses, and a missed period's step-up, once."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.calendar.sweep import ReportingSweep
from services.shared.db import Database
from tests.loans.business_date import on
from tests.loans.database import count, events
from tests.loans.envelope import INVALID, PRECONDITION, failure
from tests.loans.factories import MEET, create_loan, report, reported, update_loan, verified
from tests.loans.journey import Journey, call
from tests.support import Account, Suite

# One year, observed quarterly; the template ratchet: +20 on a miss, -10 on a pass, cap 30.
YEAR: dict[str, Any] = {"effective_from": "2027-01-01", "effective_to": "2027-12-31"}
S = pb.ReportingStatus


def calendar(suite: Suite, account: Account, loan_id: str) -> pb.ReportingCalendar:
    found: pb.ReportingCalendar = call(
        suite.loans, "ListReportingObligations", account, loan_id=loan_id
    )
    return found


def statuses(suite: Suite, account: Account, loan_id: str) -> list[int]:
    return [o.status for o in calendar(suite, account, loan_id).obligations]


def adjustments(suite: Suite, account: Account, loan_id: str) -> list[pb.MarginAdjustment]:
    page = call(suite.loans, "ListMarginAdjustments", account, loan_id=loan_id)
    return list(page.adjustments)


def test_periods_and_due_dates_follow_the_kpi_and_the_loans_grace(
    today: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    at = journey.to("ACTIVE", **YEAR)
    on(today, "2027-07-15")

    found = calendar(today, lender, at.loan.id)

    assert (found.as_of_date, found.reporting_grace_days) == ("2027-07-15", 120)
    periods = [(o.period_start, o.period_end, o.due_date) for o in found.obligations]
    assert periods == [
        ("2027-01-01", "2027-03-31", "2027-07-29"),
        ("2027-04-01", "2027-06-30", "2027-10-28"),
        ("2027-07-01", "2027-09-30", "2028-01-28"),
        ("2027-10-01", "2027-12-31", "2028-04-29"),
    ]
    assert {o.kpi_id for o in found.obligations} == {at.kpi.id}
    assert [o.status for o in found.obligations] == [
        S.Value(f"REPORTING_STATUS_{s}") for s in ("DUE", "DUE", "UPCOMING", "UPCOMING")
    ]


def test_statuses_move_with_results_and_dates_and_a_miss_steps_the_margin_up_once(
    today: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    at = journey.to("ACTIVE", **YEAR)
    on(today, "2027-07-15")
    verified(today.loans, lender, reported(today.loans, borrower, at.kpi.id, MEET, n=0))
    late = reported(today.loans, borrower, at.kpi.id, MEET, n=1)
    assert statuses(today, borrower, at.loan.id) == [
        S.REPORTING_STATUS_VERIFIED,
        S.REPORTING_STATUS_REPORTED,
        S.REPORTING_STATUS_UPCOMING,
        S.REPORTING_STATUS_UPCOMING,
    ]

    on(today, "2028-02-01")  # Q2 reported, never verified; Q3 nothing at all
    assert statuses(today, borrower, at.loan.id) == [
        S.REPORTING_STATUS_VERIFIED,
        S.REPORTING_STATUS_OVERDUE,
        S.REPORTING_STATUS_MISSED,
        S.REPORTING_STATUS_DUE,
    ]
    assert statuses(today, lender, at.loan.id)[:3] == statuses(today, borrower, at.loan.id)[:3]

    steps = [
        (a.requested_bps, a.applied_bps, a.cumulative_bps, a.kpi_result_id, a.due_date)
        for a in adjustments(today, lender, at.loan.id)
    ]
    assert steps == [
        (-10, -10, -10, steps[0][3], ""),
        (20, 20, 10, "", "2027-10-28"),
        (20, 20, 30, "", "2028-01-28"),
    ]
    assert [e["action"] for e in events(today, at.kpi.id)].count("KPI_PERIOD_MISSED") == 2
    assert count(today, "reporting_misses", loan_id=at.loan.id) == 2
    missed = calendar(today, borrower, at.loan.id).obligations
    assert [bool(o.missed_adjustment_id) for o in missed] == [False, True, True, False]

    # A late verification replaces the miss of its period; the other miss still stands.
    verification = verified(today.loans, lender, late)
    assert (verification.adjustment.applied_bps, verification.adjustment.cumulative_bps) == (-30, 0)
    assert statuses(today, borrower, at.loan.id)[1] == S.REPORTING_STATUS_VERIFIED
    assert len(adjustments(today, lender, at.loan.id)) == 4


def test_nothing_falls_due_before_the_loan_is_active(
    today: Suite, borrower: Account, journey: Journey
) -> None:
    at = journey.to("APPROVED", **YEAR)
    on(today, "2029-01-01")

    assert set(statuses(today, borrower, at.loan.id)) == {S.REPORTING_STATUS_UPCOMING}
    assert count(today, "reporting_misses", loan_id=at.loan.id) == 0


def test_the_grace_is_set_on_a_draft_loan_within_its_range(suite: Suite, borrower: Account) -> None:
    loan = create_loan(suite.loans, borrower, reporting_grace_days=0).loan
    assert loan.reporting_grace_days == 0
    assert create_loan(suite.loans, borrower).loan.reporting_grace_days == 120

    for days in (-1, 366):
        refused = create_loan(suite.loans, borrower, reporting_grace_days=days)
        assert failure(refused) == (INVALID, "GRACE_DAYS_OUT_OF_RANGE", ["reporting_grace_days"])
    updated = update_loan(suite.loans, borrower, loan.id, reporting_grace_days=90)
    assert updated.loan.reporting_grace_days == 90


def test_the_grace_changes_only_while_the_loan_is_a_draft(
    suite: Suite, borrower: Account, journey: Journey
) -> None:
    at = journey.to("PENDING_APPROVAL")

    refused = update_loan(suite.loans, borrower, at.loan.id, reporting_grace_days=30)

    assert failure(refused) == (PRECONDITION, "LOAN_NOT_DRAFT", [])


def test_observers_racing_record_each_miss_once(
    today: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    at = journey.to("ACTIVE", **YEAR)
    on(today, "2028-06-01")  # all four quarters past due, none reported
    databases = [Database(today.settings.database_url("loans")) for _ in range(2)]
    sweeps = [ReportingSweep(db, today.today) for db in databases]
    readers = [functools.partial(statuses, today, who, at.loan.id) for who in (borrower, lender)]
    observers: list[Callable[[], object]] = [*(sweep.sweep for sweep in sweeps), *readers]
    try:
        threads = [threading.Thread(target=observe) for observe in observers * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for db in databases:
            db.dispose()

    assert count(today, "reporting_misses", loan_id=at.loan.id) == 4
    assert [e["action"] for e in events(today, at.kpi.id)].count("KPI_PERIOD_MISSED") == 4
    assert [a.cumulative_bps for a in adjustments(today, lender, at.loan.id)] == [20, 30, 30, 30]
    assert set(statuses(today, borrower, at.loan.id)) == {S.REPORTING_STATUS_MISSED}


def test_the_sweep_records_a_miss_nobody_read(
    today: Suite, lender: Account, journey: Journey
) -> None:
    at = journey.to("ACTIVE", **YEAR)
    on(today, "2027-07-30")  # Q1's due date has just passed
    db = Database(today.settings.database_url("loans"))
    try:
        assert ReportingSweep(db, today.today).sweep() >= 1
        assert ReportingSweep(db, today.today).sweep() == 0  # once
    finally:
        db.dispose()

    [adjustment] = adjustments(today, lender, at.loan.id)
    assert (adjustment.period_start, adjustment.due_date) == ("2027-01-01", "2027-07-29")
    assert count(today, "reporting_misses", loan_id=at.loan.id) == 1


def test_a_result_reported_for_a_missed_period_still_counts_once_verified(
    today: Suite, borrower: Account, lender: Account, journey: Journey
) -> None:
    at = journey.to("ACTIVE", **YEAR)
    on(today, "2027-08-01")
    assert statuses(today, borrower, at.loan.id)[0] == S.REPORTING_STATUS_MISSED

    result = report(today.loans, borrower, at.kpi.id, MEET, n=0).kpi_result
    verification = verified(today.loans, lender, result.id)

    assert (verification.adjustment.applied_bps, verification.adjustment.cumulative_bps) == (
        -30,
        -10,
    )
    assert statuses(today, borrower, at.loan.id)[0] == S.REPORTING_STATUS_VERIFIED
