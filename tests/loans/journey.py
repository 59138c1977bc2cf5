"""New loans taken to a given state through the real RPCs, by their real parties."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loansuite.loans.v1 import loan_service_pb2 as pb
from loansuite.loans.v1.loan_service_pb2_grpc import LoanServiceStub

from tests.loans.envelope import tagged
from tests.loans.factories import (
    MEET,
    RATCHET,
    accept_kpi,
    get_loan,
    new_kpi,
    new_loan,
    new_ratchet,
    report,
)
from tests.support import Account

# Each transition: its request type and the party that calls it.
TRANSITIONS: dict[str, tuple[type[Any], str]] = {
    "SubmitLoan": (pb.SubmitLoanRequest, "borrower"),
    "ApproveLoan": (pb.ApproveLoanRequest, "lender"),
    "RejectLoan": (pb.RejectLoanRequest, "lender"),
    "WithdrawLoan": (pb.WithdrawLoanRequest, "borrower"),
    "ActivateLoan": (pb.ActivateLoanRequest, "lender"),
    "CloseLoan": (pb.CloseLoanRequest, "lender"),
}
# The transitions that take a ready DRAFT loan (lender invited, KPI accepted) to each state.
PATHS: dict[str, list[str]] = {
    "DRAFT": [],
    "PENDING_APPROVAL": ["SubmitLoan"],
    "APPROVED": ["SubmitLoan", "ApproveLoan"],
    "ACTIVE": ["SubmitLoan", "ApproveLoan", "ActivateLoan"],
    "CLOSED": ["SubmitLoan", "ApproveLoan", "ActivateLoan", "CloseLoan"],
    "REJECTED": ["SubmitLoan", "RejectLoan"],
    "WITHDRAWN": ["WithdrawLoan"],
}
REASON = "The KPIs are not ambitious enough."  # a rejection's, unless a test gives its own


@dataclass
class LoanAt:
    """A loan in some state, with its first KPI, and its ratchet and result where it has them."""

    loan: pb.Loan
    kpi: pb.Kpi
    lender_email: str = ""  # the invited lender's
    ratchet: pb.MarginRatchet | None = None
    result: pb.KpiResult | None = None
    drawdown: pb.Drawdown | None = None


class Journey:
    """Takes new loans of one borrower and one lender to the states the tests need."""

    def __init__(self, loans: LoanServiceStub, borrower: Account, lender: Account) -> None:
        self.loans = loans
        self.borrower = borrower
        self.lender = lender

    def draft(
        self,
        *,
        accepted: bool = False,
        ratchet: Mapping[str, int] | None = RATCHET,
        **kpi_fields: Any,
    ) -> LoanAt:
        """DRAFT, lender invited, one KPI (PROPOSED unless accepted) with a ratchet unless None."""
        loan = new_loan(self.loans, self.borrower, self.lender)
        kpi = new_kpi(self.loans, self.borrower, loan.id, **kpi_fields)
        at = LoanAt(loan, kpi, lender_email=self.lender.email)
        if ratchet is not None:
            at.ratchet = new_ratchet(self.loans, self.borrower, loan.id, at.kpi.id, **ratchet)
        if accepted:
            at.kpi = accept_kpi(self.loans, self.lender, at.kpi.id)
        return self.refreshed(at)

    def to(
        self, state: str, *, ratchet: Mapping[str, int] | None = RATCHET, **kpi_fields: Any
    ) -> LoanAt:
        """A loan in state, reached from a ready DRAFT loan by the transitions of PATHS."""
        at = self.draft(accepted=True, ratchet=ratchet, **kpi_fields)
        for rpc in PATHS[state]:
            response = self.move(rpc, at.loan.id)
            assert response.HasField("loan"), f"{rpc}: {response.error}"
            at.loan = response.loan
        return at

    def reported(self) -> LoanAt:
        """ACTIVE, with a REPORTED result of its KPI for the first period."""
        at = self.to("ACTIVE")
        response = report(self.loans, self.borrower, at.kpi.id, MEET)
        assert response.HasField("kpi_result"), response.error
        at.result = response.kpi_result
        return self.refreshed(at)

    def drawdown_requested(self) -> LoanAt:
        """ACTIVE, with a drawdown its borrower requested and its lender has yet to decide."""
        at = self.to("ACTIVE")
        request = pb.RequestDrawdownRequest(loan_id=at.loan.id, amount="1000.00")
        response = self.loans.RequestDrawdown(request, metadata=self.borrower.metadata)
        assert response.HasField("drawdown"), response.error
        at.drawdown = response.drawdown
        return self.refreshed(at)

    def refreshed(self, at: LoanAt) -> LoanAt:
        """The same loan with its current etag (every part of it changes the loan's)."""
        response = get_loan(self.loans, self.borrower, at.loan.id)
        assert response.HasField("loan"), response.error
        at.loan = response.loan
        return at

    def move(
        self,
        rpc: str,
        loan_id: str,
        *,
        by: Account | None = None,
        request_id: str = "",
        **fields: Any,
    ) -> Any:
        """Call a transition as its own party (or by another), request_id as its key and tag."""
        request_type, party = TRANSITIONS[rpc]
        if rpc == "RejectLoan":
            fields.setdefault("reason", REASON)
        account = by or (self.borrower if party == "borrower" else self.lender)
        metadata = tagged(account, request_id) if request_id else account.metadata
        request = request_type(loan_id=loan_id, request_id=request_id, **fields)
        return getattr(self.loans, rpc)(request, metadata=metadata)


def call(loans: LoanServiceStub, rpc: str, account: Account, **fields: Any) -> Any:
    """Call rpc as account with a request of fields; its payload, which it must answer."""
    request = getattr(pb, f"{rpc}Request")(**fields)
    response = getattr(loans, rpc)(request, metadata=account.metadata)
    assert not response.HasField("error"), f"{rpc}: {response.error}"
    return getattr(response, str(response.WhichOneof("result")))
