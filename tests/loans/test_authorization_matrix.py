"""Step 3 for every LoanService RPC: who may call it on a loan in the state it needs.

The matrix is data: one row per RPC, one column per caller, the expected
envelope outcome in each cell (docs/ARCHITECTURE.md, "The loan domain's rules").
Each cell runs the real RPC, as that caller, against a fresh loan brought to the
row's state through the real RPCs.
A LoanService RPC missing from the matrix fails the coverage test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2 as pb

from tests.loans.factories import kpi_request, loan_request, period, ratchet_request
from tests.loans.journey import Journey, LoanAt
from tests.loans.watching import Watches
from tests.support import Account, Suite

OK = "OK"  # the call succeeds
HIDDEN = "HIDDEN"  # ListLoans succeeds without the loan: it belongs to someone else
NF = "NOT_FOUND"  # another organization's loan: its existence is not revealed
PD = "PERMISSION_DENIED"  # the wrong role, or no loan rights at all (admins)
UA = "UNAUTHENTICATED"  # no token


class Row(NamedTuple):
    fixture: str  # the loan's state before the call; see FIXTURES
    borrower: str  # the loan's borrower
    lender: str  # the loan's lender
    other_borrower: str  # a borrower of another organization
    other_lender: str  # a lender of another organization
    admin: str
    anonymous: str  # no token at all


CALLERS = Row._fields[1:]

# fmt: off
MATRIX: dict[str, Row] = {
    # rpc                        fixture              borrow  lender  other B other L admin   anon
    "CreateLoan":            Row("none",              OK,     PD,     OK,     PD,     PD,     UA),
    "GetLoan":               Row("draft",             OK,     OK,     NF,     NF,     PD,     UA),
    "ListLoans":             Row("draft",             OK,     OK,     HIDDEN, HIDDEN, PD,     UA),
    "UpdateLoan":            Row("draft",             OK,     PD,     NF,     NF,     PD,     UA),
    "DeleteLoan":            Row("draft",             OK,     PD,     NF,     NF,     PD,     UA),
    "InviteLender":          Row("draft",             OK,     PD,     NF,     NF,     PD,     UA),
    "SubmitLoan":            Row("draft",             OK,     PD,     NF,     NF,     PD,     UA),
    "ApproveLoan":           Row("pending",           PD,     OK,     NF,     NF,     PD,     UA),
    "RejectLoan":            Row("pending",           PD,     OK,     NF,     NF,     PD,     UA),
    "WithdrawLoan":          Row("pending",           OK,     PD,     NF,     NF,     PD,     UA),
    "ActivateLoan":          Row("approved",          PD,     OK,     NF,     NF,     PD,     UA),
    "CloseLoan":             Row("active",            PD,     OK,     NF,     NF,     PD,     UA),
    "ListLoanHistory":       Row("pending",           OK,     OK,     NF,     NF,     PD,     UA),
    "CreateKpi":             Row("draft",             OK,     PD,     NF,     NF,     PD,     UA),
    "UpdateKpi":             Row("draft",             OK,     PD,     NF,     NF,     PD,     UA),
    "DeleteKpi":             Row("draft",             OK,     PD,     NF,     NF,     PD,     UA),
    "AcceptKpi":             Row("draft",             PD,     OK,     NF,     NF,     PD,     UA),
    "RejectKpi":             Row("draft",             PD,     OK,     NF,     NF,     PD,     UA),
    "ListKpis":              Row("draft",             OK,     OK,     NF,     NF,     PD,     UA),
    "CreateMarginRatchet":   Row("draft_unratcheted", OK,     PD,     NF,     NF,     PD,     UA),
    "UpdateMarginRatchet":   Row("draft",             OK,     PD,     NF,     NF,     PD,     UA),
    "DeleteMarginRatchet":   Row("draft",             OK,     PD,     NF,     NF,     PD,     UA),
    "ReportKpiResult":       Row("active",            OK,     PD,     NF,     NF,     PD,     UA),
    "VerifyKpiResult":       Row("active",            PD,     OK,     NF,     NF,     PD,     UA),
    "ListKpiResults":        Row("active",            OK,     OK,     NF,     NF,     PD,     UA),
    "ListMarginAdjustments": Row("active",            OK,     OK,     NF,     NF,     PD,     UA),
    "WatchLoans":            Row("none",              OK,     OK,     OK,     OK,     PD,     UA),
    "GetMarginSchedule":     Row("draft",             OK,     OK,     NF,     NF,     PD,     UA),
    "RequestDrawdown":       Row("active",            OK,     PD,     NF,     NF,     PD,     UA),
    "ApproveDrawdown":       Row("drawdown",          PD,     OK,     NF,     NF,     PD,     UA),
    "RejectDrawdown":        Row("drawdown",          PD,     OK,     NF,     NF,     PD,     UA),
    "RecordRepayment":       Row("active",            PD,     OK,     NF,     NF,     PD,     UA),
    "ListLedgerEntries":     Row("active",            OK,     OK,     NF,     NF,     PD,     UA),
    "GetLoanReport":         Row("active",            OK,     OK,     NF,     NF,     PD,     UA),
    "ListReportingObligations": Row("active",         OK,     OK,     NF,     NF,     PD,     UA),
}
# fmt: on

Build = Callable[[LoanAt], Message]
REQUESTS: dict[str, Build] = {
    "CreateLoan": lambda at: loan_request(),
    "GetLoan": lambda at: pb.GetLoanRequest(loan_id=at.loan.id),
    "ListLoans": lambda at: pb.ListLoansRequest(page_size=100),
    "UpdateLoan": lambda at: pb.UpdateLoanRequest(
        loan_id=at.loan.id, etag=at.loan.etag, update_mask=FieldMask(paths=["name"]), name="New"
    ),
    "DeleteLoan": lambda at: pb.DeleteLoanRequest(loan_id=at.loan.id, etag=at.loan.etag),
    "InviteLender": lambda at: pb.InviteLenderRequest(
        loan_id=at.loan.id, lender_email=at.lender_email
    ),
    "SubmitLoan": lambda at: pb.SubmitLoanRequest(loan_id=at.loan.id, etag=at.loan.etag),
    "ApproveLoan": lambda at: pb.ApproveLoanRequest(loan_id=at.loan.id, etag=at.loan.etag),
    "RejectLoan": lambda at: pb.RejectLoanRequest(loan_id=at.loan.id, reason="Targets too weak"),
    "WithdrawLoan": lambda at: pb.WithdrawLoanRequest(loan_id=at.loan.id),
    "ActivateLoan": lambda at: pb.ActivateLoanRequest(loan_id=at.loan.id),
    "CloseLoan": lambda at: pb.CloseLoanRequest(loan_id=at.loan.id),
    "ListLoanHistory": lambda at: pb.ListLoanHistoryRequest(loan_id=at.loan.id),
    "CreateKpi": lambda at: kpi_request(at.loan.id, name="Water use"),
    "UpdateKpi": lambda at: pb.UpdateKpiRequest(
        kpi_id=at.kpi.id,
        etag=at.kpi.etag,
        update_mask=FieldMask(paths=["target_value"]),
        target_value="700",
    ),
    "DeleteKpi": lambda at: pb.DeleteKpiRequest(kpi_id=at.kpi.id),
    "AcceptKpi": lambda at: pb.AcceptKpiRequest(kpi_id=at.kpi.id, etag=at.kpi.etag),
    "RejectKpi": lambda at: pb.RejectKpiRequest(kpi_id=at.kpi.id, reason="Baseline unaudited"),
    "ListKpis": lambda at: pb.ListKpisRequest(loan_id=at.loan.id),
    "CreateMarginRatchet": lambda at: ratchet_request(at.loan.id, at.kpi.id),
    "UpdateMarginRatchet": lambda at: pb.UpdateMarginRatchetRequest(
        ratchet_id=_ratchet(at).id, update_mask=FieldMask(paths=["cap_bps"]), cap_bps=50
    ),
    "DeleteMarginRatchet": lambda at: pb.DeleteMarginRatchetRequest(ratchet_id=_ratchet(at).id),
    "ReportKpiResult": lambda at: pb.ReportKpiResultRequest(
        kpi_id=at.kpi.id, value="790", **period(1)
    ),
    "VerifyKpiResult": lambda at: pb.VerifyKpiResultRequest(kpi_result_id=_result(at).id),
    "ListKpiResults": lambda at: pb.ListKpiResultsRequest(loan_id=at.loan.id),
    "ListMarginAdjustments": lambda at: pb.ListMarginAdjustmentsRequest(loan_id=at.loan.id),
    "WatchLoans": lambda at: pb.WatchLoansRequest(),
    "GetMarginSchedule": lambda at: pb.GetMarginScheduleRequest(loan_id=at.loan.id),
    "RequestDrawdown": lambda at: pb.RequestDrawdownRequest(loan_id=at.loan.id, amount="1000.00"),
    "ApproveDrawdown": lambda at: pb.ApproveDrawdownRequest(drawdown_id=_drawdown(at).id),
    "RejectDrawdown": lambda at: pb.RejectDrawdownRequest(
        drawdown_id=_drawdown(at).id, reason="No invoices attached"
    ),
    "RecordRepayment": lambda at: pb.RecordRepaymentRequest(loan_id=at.loan.id, amount="1000.00"),
    "ListLedgerEntries": lambda at: pb.ListLedgerEntriesRequest(loan_id=at.loan.id),
    "GetLoanReport": lambda at: pb.GetLoanReportRequest(loan_id=at.loan.id),
    "ListReportingObligations": lambda at: pb.ListReportingObligationsRequest(loan_id=at.loan.id),
}


def _ratchet(at: LoanAt) -> pb.MarginRatchet:
    assert at.ratchet is not None
    return at.ratchet


def _drawdown(at: LoanAt) -> pb.Drawdown:
    assert at.drawdown is not None
    return at.drawdown


def _result(at: LoanAt) -> pb.KpiResult:
    assert at.result is not None
    return at.result


FIXTURES: dict[str, Callable[[Journey], LoanAt]] = {
    "none": lambda journey: LoanAt(pb.Loan(), pb.Kpi()),
    "draft": lambda journey: journey.draft(),
    "draft_unratcheted": lambda journey: journey.draft(ratchet=None),
    "pending": lambda journey: journey.to("PENDING_APPROVAL"),
    "approved": lambda journey: journey.to("APPROVED"),
    "active": lambda journey: journey.reported(),  # with a REPORTED result
    "drawdown": lambda journey: journey.drawdown_requested(),
}
LOAN_SERVICE = pb.DESCRIPTOR.services_by_name["LoanService"]


@dataclass
class People:
    """The loan's two parties, a borrower and a lender from elsewhere, and an admin."""

    borrower: Account
    lender: Account
    other_borrower: Account
    other_lender: Account
    admin: Account

    def of(self, caller: str) -> Account | None:
        account: Account | None = getattr(self, caller, None)
        return account


@pytest.fixture(scope="module")
def people(suite: Suite, borrower: Account, lender: Account, admin: Account) -> People:
    return People(
        borrower=borrower,
        lender=lender,
        other_borrower=suite.register("BORROWER"),
        other_lender=suite.register("LENDER"),
        admin=admin,
    )


def outcome(suite: Suite, rpc: str, request: Message, caller: Account | None, at: LoanAt) -> str:
    """What the envelope said: OK, HIDDEN (a list without the loan), or the error code's name."""
    metadata = () if caller is None else caller.metadata
    if rpc == "WatchLoans":
        return _watch_outcome(suite, caller)
    response = getattr(suite.loans, rpc)(request, metadata=metadata)
    if response.HasField("error"):
        return _code_name(response.error.code)
    if rpc == "ListLoans" and at.loan.id not in {loan.id for loan in response.page.loans}:
        return HIDDEN
    return OK


def _watch_outcome(suite: Suite, caller: Account | None) -> str:
    """OK for a stream the server took on; otherwise the code of the one error it sent."""
    watches = Watches()
    try:
        watch = watches.open(suite.loans, caller)
        return OK if watch.subscribed() else _code_name(watch.error().code)
    finally:
        watches.cancel_all()


def _code_name(code: error_pb2.ErrorCode.ValueType) -> str:
    return error_pb2.ErrorCode.Name(code).removeprefix("ERROR_CODE_")


def test_the_matrix_covers_every_loan_service_rpc() -> None:
    rpcs = {method.name for method in LOAN_SERVICE.methods}

    assert set(MATRIX) == rpcs, "every LoanService RPC needs a row, and only those"
    assert set(REQUESTS) == rpcs, "every LoanService RPC needs a request builder"
    assert {row.fixture for row in MATRIX.values()} <= set(FIXTURES)


@pytest.mark.parametrize("rpc", sorted(MATRIX))
def test_each_caller_gets_what_the_matrix_says(
    suite: Suite, people: People, journey: Journey, rpc: str
) -> None:
    expected = MATRIX[rpc]
    actual: dict[str, str] = {}
    at = None
    for caller in CALLERS:
        if at is None:
            at = FIXTURES[expected.fixture](journey)
        actual[caller] = outcome(suite, rpc, REQUESTS[rpc](at), people.of(caller), at)
        if actual[caller] == OK:
            at = None  # the call may have changed the loan: the next caller gets a fresh one

    assert actual == {caller: getattr(expected, caller) for caller in CALLERS}
