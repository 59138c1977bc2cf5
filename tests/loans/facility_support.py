"""Loans for the facility tests: ACTIVE loans that started in the past, drawdowns made."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from loansuite.loans.v1 import loan_service_pb2 as pb
from loansuite.loans.v1.loan_service_pb2_grpc import LoanServiceStub

from tests.loans.factories import accept_kpi, new_kpi, new_loan, new_ratchet
from tests.loans.journey import call
from tests.support import Account


@dataclass
class Started:
    """An ACTIVE loan that started on the first of January last year, with one annual KPI."""

    loan: pb.Loan
    kpi: pb.Kpi
    first_year: dict[str, str]  # the KPI's first observation period, which has ended


def started_last_year(
    loans: LoanServiceStub,
    borrower: Account,
    lender: Account,
    ratchet: dict[str, int],
    **loan_fields: Any,
) -> Started:
    """ACTIVE since 1 January of last year, maturing in two years; results due in a year.

    With the suite's business date on the wall clock's, the grace of 365 days keeps
    last year's period from being due: no missed period adds an adjustment of its
    own while a test reports and verifies it.
    """
    year = datetime.datetime.now(datetime.UTC).year
    start, maturity = datetime.date(year - 1, 1, 1), datetime.date(year + 2, 1, 1)
    loan = new_loan(
        loans,
        borrower,
        lender,
        start_date=start.isoformat(),
        maturity_date=maturity.isoformat(),
        reporting_grace_days=365,
        **loan_fields,
    )
    kpi = new_kpi(
        loans,
        borrower,
        loan.id,
        effective_from=start.isoformat(),
        effective_to=datetime.date(year + 1, 12, 31).isoformat(),
        observation_frequency=pb.OBSERVATION_FREQUENCY_ANNUAL,
    )
    new_ratchet(loans, borrower, loan.id, kpi.id, **ratchet)
    kpi = accept_kpi(loans, lender, kpi.id)
    call(loans, "SubmitLoan", borrower, loan_id=loan.id)
    call(loans, "ApproveLoan", lender, loan_id=loan.id)
    loan = call(loans, "ActivateLoan", lender, loan_id=loan.id)
    first_year = {"period_start": start.isoformat(), "period_end": f"{year - 1}-12-31"}
    return Started(loan, kpi, first_year)


def drawdown(loans: LoanServiceStub, borrower: Account, loan_id: str, amount: str) -> pb.Drawdown:
    """A REQUESTED drawdown of amount."""
    drawn: pb.Drawdown = call(loans, "RequestDrawdown", borrower, loan_id=loan_id, amount=amount)
    return drawn


def approved(loans: LoanServiceStub, lender: Account, drawdown_id: str) -> pb.DrawdownApproval:
    """The approval of a drawdown by the loan's lender."""
    approval: pb.DrawdownApproval = call(loans, "ApproveDrawdown", lender, drawdown_id=drawdown_id)
    return approval


def schedule(loans: LoanServiceStub, account: Account, loan_id: str) -> pb.MarginSchedule:
    """The loan's margin schedule as account reads it."""
    found: pb.MarginSchedule = call(loans, "GetMarginSchedule", account, loan_id=loan_id)
    return found
