"""CreateLoan, GetLoan and ListLoans."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans import conversions, use_cases
from services.loans.rpc.base import LoanRpcBase
from services.loans.schemas import parse_new_loan
from services.shared.envelope import unary
from services.shared.paging import page_size

__all__ = ["LoanRpcs"]


class LoanRpcs(LoanRpcBase):
    @unary(pb.CreateLoanResponse)
    def CreateLoan(
        self, request: pb.CreateLoanRequest, context: grpc.ServicerContext
    ) -> pb.CreateLoanResponse:
        """Create a DRAFT loan for the caller's borrower organization."""
        caller = self._caller(context)
        use_cases.authorize_loan_creation(caller)
        new_loan = parse_new_loan(**conversions.loan_form(request))
        return self._mutate(
            "CreateLoan",
            request,
            caller,
            pb.CreateLoanResponse.FromString,
            lambda session: pb.CreateLoanResponse(
                loan=conversions.loan_to_proto(
                    use_cases.create_loan(session, caller=caller, new_loan=new_loan)
                )
            ),
        )

    @unary(pb.GetLoanResponse)
    def GetLoan(
        self, request: pb.GetLoanRequest, context: grpc.ServicerContext
    ) -> pb.GetLoanResponse:
        """Return a loan that the caller's organization borrows or lends."""
        caller = self._caller(context)
        with self._db.read() as session:
            loan = use_cases.get_loan(session, caller=caller, loan_id=request.loan_id)
            return pb.GetLoanResponse(loan=conversions.loan_to_proto(loan))

    @unary(pb.ListLoansResponse)
    def ListLoans(
        self, request: pb.ListLoansRequest, context: grpc.ServicerContext
    ) -> pb.ListLoansResponse:
        """Page through the caller's organization's loans, newest first."""
        caller = self._caller(context)
        limit = page_size(request.page_size, default=25, maximum=100)
        states = sorted(set(conversions.state_names(list(request.filter.states))))
        counterparty = request.filter.counterparty_organization_id
        scope = {"org": caller.organization_id, "states": states, "counterparty": counterparty}
        after = self._cursor(request.page_token, scope)
        with self._db.read() as session:
            loans = use_cases.list_loans(
                session,
                caller=caller,
                states=states,
                limit=limit + 1,
                after=after,
                counterparty=counterparty,
            )
        page = pb.LoanPage(loans=[conversions.loan_to_proto(loan) for loan in loans[:limit]])
        if len(loans) > limit:
            last = loans[limit - 1]
            page.next_page_token = self._pages.encode(
                {**scope, "time": last.create_time.isoformat(), "id": last.id}
            )
        return pb.ListLoansResponse(page=page)

    def _cursor(self, token: str, scope: Mapping[str, object]) -> use_cases.LoanCursor | None:
        if not token:
            return None
        cursor = self._pages.decode(token)
        if any(cursor.get(k) != v for k, v in scope.items()):
            # A token is only good for the query that issued it.
            raise self._pages.invalid()
        return use_cases.LoanCursor(datetime.fromisoformat(cursor["time"]), cursor["id"])
