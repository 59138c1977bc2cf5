"""Test support: one loan taken to a given state through the real RPCs, by its real parties."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.loans.v1 import loan_service_pb2 as pb

from services.auth.wiring import create_admin
from tests.support import PASSWORD, Account, Suite

LOAN = pb.CreateLoanRequest(
    name="Offshore Wind Facility",
    loan_type=pb.LOAN_TYPE_FIXED_RATE,
    currency_code="EUR",
    principal_amount="1250000.00",
    committed_amount="1000000.00",
    drawn_amount="0.00",
    start_date="2027-01-01",
    maturity_date="2032-01-01",
)
KPI = pb.CreateKpiRequest(
    name="Scope 1 and 2 emissions",
    kpi_type=pb.KPI_TYPE_GHG_EMISSIONS,
    unit="tCO2e",
    direction=pb.KPI_DIRECTION_LOWER_IS_BETTER,
    baseline_value="1000",
    target_value="800",
    observation_frequency=pb.OBSERVATION_FREQUENCY_ANNUAL,
    effective_from="2027-01-01",
    effective_to="2031-12-31",
)
RATCHET = {"step_up_bps": 10, "step_down_bps": 5, "cap_bps": 25}
# Results of successive years; each period is distinct, so none overlaps another.
PERIODS = [(f"{year}-01-01", f"{year}-12-31") for year in range(2027, 2032)]


def ok(response: Any, field: str) -> Any:
    """The payload of a successful envelope; fails the test with the error otherwise."""
    assert response.WhichOneof("result") == field, response.error
    return getattr(response, field)


@dataclass
class LoanAt:
    """A loan in some state, with its first KPI, ratchet and result where it has them."""

    loan: pb.Loan
    lender_email: str = ""  # the invited lender's
    kpi: pb.Kpi | None = None
    ratchet: pb.MarginRatchet | None = None
    result: pb.KpiResult | None = None


class Journey:
    """Takes new loans of one borrower and one lender to the states the tests need."""

    def __init__(self, suite: Suite, borrower: Account, lender: Account) -> None:
        self.loans = suite.loans
        self.borrower = borrower
        self.lender = lender

    def draft(self, *, ratchet: bool = True) -> LoanAt:
        """DRAFT, lender invited, one PROPOSED KPI (with a ratchet unless told otherwise)."""
        loan = ok(self.loans.CreateLoan(LOAN, metadata=self.borrower.metadata), "loan")
        self._as_borrower("InviteLender", loan_id=loan.id, lender_email=self.lender.email)
        kpi = self._as_borrower("CreateKpi", KPI, loan_id=loan.id)
        at = LoanAt(loan, lender_email=self.lender.email, kpi=kpi)
        if ratchet:
            at.ratchet = self._as_borrower(
                "CreateMarginRatchet", loan_id=loan.id, kpi_id=at.kpi.id, **RATCHET
            )
        return self.refreshed(at)

    def pending(self) -> LoanAt:
        """PENDING_APPROVAL with its KPI accepted."""
        at = self.draft()
        assert at.kpi is not None
        at.kpi = self._as_lender("AcceptKpi", kpi_id=at.kpi.id)
        self._as_borrower("SubmitLoan", loan_id=at.loan.id)
        return self.refreshed(at)

    def approved(self) -> LoanAt:
        at = self.pending()
        self._as_lender("ApproveLoan", loan_id=at.loan.id)
        return self.refreshed(at)

    def active(self, *, reported: bool = True) -> LoanAt:
        """ACTIVE; with a REPORTED result for the first period unless told otherwise."""
        at = self.approved()
        self._as_lender("ActivateLoan", loan_id=at.loan.id)
        if reported:
            assert at.kpi is not None
            start, end = PERIODS[0]
            at.result = self._as_borrower(
                "ReportKpiResult", kpi_id=at.kpi.id, period_start=start, period_end=end, value="750"
            )
        return self.refreshed(at)

    def refreshed(self, at: LoanAt) -> LoanAt:
        """The same loan with its current etag (every part of it changes the loan's)."""
        request = pb.GetLoanRequest(loan_id=at.loan.id)
        at.loan = ok(self.loans.GetLoan(request, metadata=self.borrower.metadata), "loan")
        return at

    def _as_borrower(self, rpc: str, base: Any = None, **fields: Any) -> Any:
        return call(self.loans, rpc, self.borrower, base, **fields)

    def _as_lender(self, rpc: str, base: Any = None, **fields: Any) -> Any:
        return call(self.loans, rpc, self.lender, base, **fields)


def call(loans: Any, rpc: str, account: Account, base: Any = None, **fields: Any) -> Any:
    """Call rpc with a request built from base (a message) and fields; return its payload."""
    request = getattr(pb, f"{rpc}Request")()
    if base is not None:
        request.MergeFrom(base)
    for name, value in fields.items():
        setattr(request, name, value)
    response = getattr(loans, rpc)(request, metadata=account.metadata)
    assert not response.HasField("error"), f"{rpc}: {response.error}"
    return getattr(response, str(response.WhichOneof("result")))


def login_admin(suite: Suite) -> Account:
    """A platform admin, created as an operator does (never through Register), logged in."""
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    user_id = create_admin(suite.settings, email=email, password=PASSWORD, name="Ops Admin")
    session = suite.auth.Login(auth_pb.LoginRequest(email=email, password=PASSWORD)).session
    assert session.access_token
    return Account(email, user_id, session.user.organization.id, session.access_token)
