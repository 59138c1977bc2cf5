"""LoanService over gRPC: proto in, proto out, one transaction per call."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb
from loansuite.loans.v1 import loan_service_pb2_grpc as pb_grpc
from sqlalchemy.orm import Session

from services.loans import conversions, use_cases
from services.loans.models import IdempotencyRecord
from services.loans.schemas import parse_new_loan
from services.shared.db import Database
from services.shared.envelope import unary
from services.shared.idempotency import IdempotencyKey, run_idempotent
from services.shared.identity import Authenticator
from services.shared.paging import PageTokens, page_size

__all__ = ["LoanServicer"]


class LoanServicer(pb_grpc.LoanServiceServicer):
    """Each mutating call: authenticate, load user, authorize, validate, write + audit."""

    def __init__(self, db: Database, authenticator: Authenticator, page_tokens: PageTokens) -> None:
        self._db = db
        self._auth = authenticator
        self._pages = page_tokens

    @unary(pb.CreateLoanResponse)
    def CreateLoan(
        self, request: pb.CreateLoanRequest, context: grpc.ServicerContext
    ) -> pb.CreateLoanResponse:
        """Create a DRAFT loan for the caller's borrower organization."""
        caller = self._auth.authenticate(context.invocation_metadata())
        use_cases.authorize_loan_creation(caller)
        new_loan = parse_new_loan(**conversions.create_form(request))
        key = None
        if request.request_id:
            key = IdempotencyKey.of(
                scope=caller.user_id,
                rpc="CreateLoan",
                request_id=request.request_id,
                request=request.SerializeToString(deterministic=True),
            )

        def write(session: Session) -> bytes:
            loan = use_cases.create_loan(session, caller=caller, new_loan=new_loan)
            response = pb.CreateLoanResponse(loan=conversions.loan_to_proto(loan))
            return response.SerializeToString()

        return pb.CreateLoanResponse.FromString(
            run_idempotent(self._db, IdempotencyRecord, key, write)
        )

    @unary(pb.GetLoanResponse)
    def GetLoan(
        self, request: pb.GetLoanRequest, context: grpc.ServicerContext
    ) -> pb.GetLoanResponse:
        """Return a loan that the caller's organization borrows or lends."""
        caller = self._auth.authenticate(context.invocation_metadata())
        with self._db.read() as session:
            loan = use_cases.get_loan(session, caller=caller, loan_id=request.loan_id)
            return pb.GetLoanResponse(loan=conversions.loan_to_proto(loan))

    @unary(pb.ListLoansResponse)
    def ListLoans(
        self, request: pb.ListLoansRequest, context: grpc.ServicerContext
    ) -> pb.ListLoansResponse:
        """Page through the caller's organization's loans, newest first."""
        caller = self._auth.authenticate(context.invocation_metadata())
        limit = page_size(request.page_size, default=25, maximum=100)
        states = sorted(set(conversions.state_names(list(request.filter.states))))
        scope = {"org": caller.organization_id, "states": states}
        after = self._cursor(request.page_token, scope)
        with self._db.read() as session:
            loans = use_cases.list_loans(
                session, caller=caller, states=states, limit=limit + 1, after=after
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
