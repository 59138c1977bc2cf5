"""GetLoanReport through the real RPCs: every part of a loan in one answer, for its parties only."""

from __future__ import annotations

import datetime

import pytest
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.envelope import NOT_FOUND, failure
from tests.loans.facility_support import approved, drawdown, schedule, started_last_year
from tests.loans.factories import MISS, get_loan, new_kpi, new_loan
from tests.loans.journey import call
from tests.support import Account, Suite


def report(suite: Suite, account: Account, loan_id: str) -> pb.LoanReport:
    found: pb.LoanReport = call(suite.loans, "GetLoanReport", account, loan_id=loan_id)
    return found


@pytest.fixture
def wall_clock(today: Suite) -> Suite:
    """The suite with its business date on the wall clock's, as verifications are dated."""
    today.today.day = datetime.datetime.now(datetime.UTC).date()
    return today


def test_the_report_holds_every_part_of_the_loan(
    wall_clock: Suite, borrower: Account, lender: Account
) -> None:
    suite = wall_clock
    ratchet = {"step_up_bps": 20, "step_down_bps": 10, "cap_bps": 30}
    started = started_last_year(suite.loans, borrower, lender, ratchet, base_margin_bps=180)
    loans, loan_id = suite.loans, started.loan.id
    result = call(
        loans, "ReportKpiResult", borrower, kpi_id=started.kpi.id, value=MISS, **started.first_year
    )
    verification = call(loans, "VerifyKpiResult", lender, kpi_result_id=result.id)
    funded = approved(loans, lender, drawdown(loans, borrower, loan_id, "1000.00").id)
    pending = drawdown(loans, borrower, loan_id, "2000.00")
    repaid = call(loans, "RecordRepayment", lender, loan_id=loan_id, amount="500.00")

    found = report(suite, lender, loan_id)

    assert found.loan == get_loan(loans, lender, loan_id).loan
    assert (found.parties.borrower_organization_id, found.parties.lender_organization_id) == (
        borrower.organization_id,
        lender.organization_id,
    )
    [kpi] = found.kpis
    assert (kpi.kpi.id, kpi.ratchet.step_up_bps) == (started.kpi.id, 20)
    assert [r.id for r in kpi.results] == [result.id]
    assert [a.id for a in found.adjustments] == [verification.adjustment.id]
    assert found.margin_schedule == schedule(loans, lender, loan_id)
    assert found.margin_schedule.periods[-1].all_in_margin_bps == 200  # 180 + 20
    assert [(d.id, d.status) for d in found.drawdowns] == [
        (funded.drawdown.id, pb.DRAWDOWN_STATUS_APPROVED),
        (pending.id, pb.DRAWDOWN_STATUS_REQUESTED),
    ]
    assert [e.id for e in found.ledger_entries] == [funded.entry.id, repaid.id]
    assert found.ledger_entries[-1].outstanding_amount == found.loan.outstanding_amount
    assert [pb.LoanState.Name(c.to_state) for c in found.history.changes] == [
        "LOAN_STATE_PENDING_APPROVAL",
        "LOAN_STATE_APPROVED",
        "LOAN_STATE_ACTIVE",
    ]
    calendar = call(loans, "ListReportingObligations", lender, loan_id=loan_id)
    assert found.calendar == calendar
    assert [o.kpi_result_id for o in found.calendar.obligations][:1] == [result.id]
    assert found.HasField("generate_time")
    assert report(suite, borrower, loan_id).ledger_entries == found.ledger_entries


def test_a_kpi_without_a_ratchet_or_results_is_reported_as_such(
    suite: Suite, borrower: Account
) -> None:
    loan = new_loan(suite.loans, borrower)
    kpi = new_kpi(suite.loans, borrower, loan.id)

    found = report(suite, borrower, loan.id)

    [part] = found.kpis
    assert part.kpi.id == kpi.id
    assert not part.HasField("ratchet")
    assert list(part.results) == []
    assert (list(found.drawdowns), list(found.ledger_entries)) == ([], [])
    assert found.parties.lender_organization_id == ""


def test_another_organizations_report_is_not_found(
    suite: Suite, borrower: Account, lender: Account
) -> None:
    loan = new_loan(suite.loans, borrower, lender)

    for stranger in (suite.register("BORROWER"), suite.register("LENDER")):
        response = suite.loans.GetLoanReport(
            pb.GetLoanReportRequest(loan_id=loan.id), metadata=stranger.metadata
        )
        assert failure(response)[:2] == (NOT_FOUND, "LOAN_NOT_FOUND")


def test_a_miss_first_seen_by_the_report_is_recorded_and_in_its_schedule(
    today: Suite, borrower: Account, lender: Account
) -> None:
    suite, ratchet = today, {"step_up_bps": 20, "step_down_bps": 10, "cap_bps": 30}
    started = started_last_year(suite.loans, borrower, lender, ratchet, base_margin_bps=180)
    year = int(started.loan.start_date[:4])
    # Last year's figures were due on the last day of this year (365 days' grace); never sent.
    suite.today.day = datetime.date(year + 2, 1, 15)

    found = report(suite, lender, started.loan.id)

    missed = found.calendar.obligations[0]
    assert (missed.period_start, missed.status) == (
        f"{year}-01-01",
        pb.REPORTING_STATUS_MISSED,
    )
    [adjustment] = found.adjustments
    assert (adjustment.id, adjustment.due_date) == (missed.missed_adjustment_id, missed.due_date)
    # In force from the first quarter that starts after the due date, never before.
    margins = {p.start_date: p.all_in_margin_bps for p in found.margin_schedule.periods}
    assert margins[f"{year + 1}-10-01"] == 180
    assert margins[f"{year + 2}-01-01"] == 200
    assert report(suite, lender, started.loan.id).adjustments == found.adjustments  # once
