"""SubmitLoan, ApproveLoan, RejectLoan, WithdrawLoan, ActivateLoan, CloseLoan, ListLoanHistory."""

from __future__ import annotations

from typing import Protocol, TypeVar

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy.orm import Session

from services.loans import lifecycle, lifecycle_conversions
from services.loans.conversions import loan_to_proto
from services.loans.rpc.base import LoanRpcBase
from services.shared.envelope import unary

__all__ = ["LifecycleRpcs"]


class _TransitionRequest(Protocol):
    @property
    def loan_id(self) -> str: ...

    @property
    def etag(self) -> str: ...

    @property
    def request_id(self) -> str: ...

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


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
    @unary(pb.SubmitLoanResponse)
    def SubmitLoan(
        self, request: pb.SubmitLoanRequest, context: grpc.ServicerContext
    ) -> pb.SubmitLoanResponse:
        """Move a DRAFT loan with a lender and KPIs to PENDING_APPROVAL (borrower)."""
        return self._transition("SubmitLoan", request, context, pb.SubmitLoanResponse)

    @unary(pb.ApproveLoanResponse)
    def ApproveLoan(
        self, request: pb.ApproveLoanRequest, context: grpc.ServicerContext
    ) -> pb.ApproveLoanResponse:
        """Move a PENDING_APPROVAL loan whose KPIs are all accepted to APPROVED (lender)."""
        return self._transition("ApproveLoan", request, context, pb.ApproveLoanResponse)

    @unary(pb.RejectLoanResponse)
    def RejectLoan(
        self, request: pb.RejectLoanRequest, context: grpc.ServicerContext
    ) -> pb.RejectLoanResponse:
        """Move a PENDING_APPROVAL loan to REJECTED, with a reason (lender)."""
        return self._transition(
            "RejectLoan", request, context, pb.RejectLoanResponse, reason=request.reason
        )

    @unary(pb.WithdrawLoanResponse)
    def WithdrawLoan(
        self, request: pb.WithdrawLoanRequest, context: grpc.ServicerContext
    ) -> pb.WithdrawLoanResponse:
        """Move a DRAFT or PENDING_APPROVAL loan to WITHDRAWN (borrower)."""
        return self._transition("WithdrawLoan", request, context, pb.WithdrawLoanResponse)

    @unary(pb.ActivateLoanResponse)
    def ActivateLoan(
        self, request: pb.ActivateLoanRequest, context: grpc.ServicerContext
    ) -> pb.ActivateLoanResponse:
        """Move an APPROVED loan to ACTIVE (lender)."""
        return self._transition("ActivateLoan", request, context, pb.ActivateLoanResponse)

    @unary(pb.CloseLoanResponse)
    def CloseLoan(
        self, request: pb.CloseLoanRequest, context: grpc.ServicerContext
    ) -> pb.CloseLoanResponse:
        """Move an ACTIVE loan to CLOSED (lender)."""
        return self._transition("CloseLoan", request, context, pb.CloseLoanResponse)

    @unary(pb.ListLoanHistoryResponse)
    def ListLoanHistory(
        self, request: pb.ListLoanHistoryRequest, context: grpc.ServicerContext
    ) -> pb.ListLoanHistoryResponse:
        """Return the loan's state changes, oldest first (either party)."""
        caller = self._caller(context)
        with self._db.read() as session:
            changes = lifecycle.list_loan_history(session, caller=caller, loan_id=request.loan_id)
            return pb.ListLoanHistoryResponse(
                history=lifecycle_conversions.history_to_proto(changes)
            )

    def _transition(
        self,
        rpc: str,
        request: _TransitionRequest,
        context: grpc.ServicerContext,
        response_type: type[_Resp],
        *,
        reason: str = "",
    ) -> _Resp:
        """One lifecycle transition in one transaction, replayable by request_id."""
        caller = self._caller(context)
        transition = lifecycle.TRANSITIONS[rpc]

        def write(session: Session) -> _Resp:
            loan = lifecycle.transition_loan(
                session,
                caller=caller,
                transition=transition,
                loan_id=request.loan_id,
                etag=request.etag,
                reason=reason,
            )
            return response_type(loan=loan_to_proto(loan))

        return self._mutate(rpc, request, caller, response_type.FromString, write)
