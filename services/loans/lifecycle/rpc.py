"""SubmitLoan, ApproveLoan, RejectLoan, WithdrawLoan, ActivateLoan, CloseLoan, ListLoanHistory."""

from __future__ import annotations

from typing import Protocol, TypeVar

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.lifecycle import transitions
from services.loans.lifecycle.conversions import history_to_proto
from services.loans.lifecycle.transitions import Transition
from services.loans.loan.conversions import loan_to_proto
from services.loans.rpc import LoanRpcBase, Write, mutation
from services.shared.envelope import unary
from services.shared.identity import Caller

__all__ = ["LifecycleRpcs"]


class _TransitionRequest(Protocol):
    @property
    def loan_id(self) -> str: ...

    @property
    def etag(self) -> str: ...


_Resp = TypeVar(
    "_Resp",
    pb.SubmitLoanResponse,
    pb.ApproveLoanResponse,
    pb.RejectLoanResponse,
    pb.WithdrawLoanResponse,
    pb.ActivateLoanResponse,
    pb.CloseLoanResponse,
)


class LifecycleRpcs(LoanRpcBase):
    @mutation(pb.SubmitLoanResponse)
    def SubmitLoan(
        self, request: pb.SubmitLoanRequest, caller: Caller
    ) -> Write[pb.SubmitLoanResponse]:
        """Move a DRAFT loan with a lender and KPIs to PENDING_APPROVAL (borrower)."""
        return self._transition(transitions.SUBMIT, request, caller, pb.SubmitLoanResponse)

    @mutation(pb.ApproveLoanResponse)
    def ApproveLoan(
        self, request: pb.ApproveLoanRequest, caller: Caller
    ) -> Write[pb.ApproveLoanResponse]:
        """Move a PENDING_APPROVAL loan whose KPIs are all accepted to APPROVED (lender)."""
        return self._transition(transitions.APPROVE, request, caller, pb.ApproveLoanResponse)

    @mutation(pb.RejectLoanResponse)
    def RejectLoan(
        self, request: pb.RejectLoanRequest, caller: Caller
    ) -> Write[pb.RejectLoanResponse]:
        """Move a PENDING_APPROVAL loan to REJECTED, with a reason (lender)."""
        return self._transition(
            transitions.REJECT, request, caller, pb.RejectLoanResponse, reason=request.reason
        )

    @mutation(pb.WithdrawLoanResponse)
    def WithdrawLoan(
        self, request: pb.WithdrawLoanRequest, caller: Caller
    ) -> Write[pb.WithdrawLoanResponse]:
        """Move a DRAFT or PENDING_APPROVAL loan to WITHDRAWN (borrower)."""
        return self._transition(transitions.WITHDRAW, request, caller, pb.WithdrawLoanResponse)

    @mutation(pb.ActivateLoanResponse)
    def ActivateLoan(
        self, request: pb.ActivateLoanRequest, caller: Caller
    ) -> Write[pb.ActivateLoanResponse]:
        """Move an APPROVED loan to ACTIVE from its start date on (lender)."""
        return self._transition(transitions.ACTIVATE, request, caller, pb.ActivateLoanResponse)

    @mutation(pb.CloseLoanResponse)
    def CloseLoan(
        self, request: pb.CloseLoanRequest, caller: Caller
    ) -> Write[pb.CloseLoanResponse]:
        """Move an ACTIVE loan to CLOSED (lender)."""
        return self._transition(transitions.CLOSE, request, caller, pb.CloseLoanResponse)

    @unary(pb.ListLoanHistoryResponse)
    def ListLoanHistory(
        self, request: pb.ListLoanHistoryRequest, context: grpc.ServicerContext
    ) -> pb.ListLoanHistoryResponse:
        """Return the loan's state changes, oldest first (either party)."""
        caller = self._caller(context)
        with self._db.read() as session:
            changes = transitions.list_loan_history(session, caller=caller, loan_id=request.loan_id)
            return pb.ListLoanHistoryResponse(history=history_to_proto(changes))

    def _transition(
        self,
        transition: Transition,
        request: _TransitionRequest,
        caller: Caller,
        response_type: type[_Resp],
        *,
        reason: str = "",
    ) -> Write[_Resp]:
        """The write of one lifecycle transition, judged on today's business date."""
        today = self._today()
        return lambda session: response_type(
            loan=loan_to_proto(
                transitions.transition_loan(
                    session,
                    caller=caller,
                    transition=transition,
                    loan_id=request.loan_id,
                    etag=request.etag,
                    today=today,
                    reason=reason,
                )
            )
        )
