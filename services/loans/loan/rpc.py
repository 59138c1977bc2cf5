"""CreateLoan, GetLoan, ListLoans, UpdateLoan, DeleteLoan and InviteLender."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.aggregate import is_uuid, require_party
from services.loans.loan import conversions, queries, terms, use_cases
from services.loans.loan.conversions import loan_to_proto
from services.loans.loan.schemas import parse_new_loan
from services.loans.rpc import LoanRpcBase, Write, mutation
from services.shared.auth_client import DirectoryUser
from services.shared.envelope import unary
from services.shared.errors import UnavailableError, ValidationError
from services.shared.identity import Caller
from services.shared.paging import page_size
from services.shared.validation import text_field

__all__ = ["LoanRpcs"]

_EMAIL_MAX_LENGTH = 254  # RFC 5321's limit on a forward path, as auth stores it


class LoanRpcs(LoanRpcBase):
    @mutation(pb.CreateLoanResponse)
    def CreateLoan(
        self, request: pb.CreateLoanRequest, caller: Caller
    ) -> Write[pb.CreateLoanResponse]:
        """Create a DRAFT loan for the caller's borrower organization."""
        use_cases.authorize_loan_creation(caller)
        new_loan = parse_new_loan(**conversions.loan_form(request))
        return lambda session: pb.CreateLoanResponse(
            loan=loan_to_proto(use_cases.create_loan(session, caller=caller, new_loan=new_loan))
        )

    @unary(pb.GetLoanResponse)
    def GetLoan(
        self, request: pb.GetLoanRequest, context: grpc.ServicerContext
    ) -> pb.GetLoanResponse:
        """Return a loan that the caller's organization borrows or lends."""
        caller = self._caller(context)
        with self._db.reading() as connection:
            version = queries.find_loan_version(connection, caller=caller, loan_id=request.loan_id)
            loan = conversions.kept_loan(version)
            if loan is None:  # not read since it was committed: read in full, and kept
                row = queries.find_loan(connection, caller=caller, loan_id=version.id)
                loan = conversions.committed_loan_to_proto(row)
        return pb.GetLoanResponse(loan=loan)

    @unary(pb.ListLoansResponse)
    def ListLoans(
        self, request: pb.ListLoansRequest, context: grpc.ServicerContext
    ) -> pb.ListLoansResponse:
        """Page through the caller's organization's loans, newest first."""
        caller = self._caller(context)
        limit = page_size(request.page_size, default=25, maximum=100)
        states = conversions.states_of(request.filter.states)
        if request.filter.states and not states:  # only unknown states, which match nothing
            return pb.ListLoansResponse(page=pb.LoanPage())
        counterparty = request.filter.counterparty_organization_id
        if counterparty and not is_uuid(counterparty):
            field = "filter.counterparty_organization_id"
            raise ValidationError(
                [(field, "COUNTERPARTY_ORGANIZATION_ID_INVALID", "must be an organization id")]
            )
        scope = {"org": caller.organization_id, "states": states, "counterparty": counterparty}
        after = self._cursor(request.page_token, scope)
        # Filled in place: a message given to a constructor is copied, a page of 25 loans
        # in about 13 µs.
        response = pb.ListLoansResponse()
        page = response.page
        with self._db.reading() as connection:
            loans = queries.page_of_loans(
                connection,
                caller=caller,
                states=states,
                limit=limit + 1,
                after=after,
                counterparty=counterparty,
            )
            page.loans.extend(
                conversions.committed_loans_to_proto(
                    loans[:limit],
                    lambda ids: queries.loans_by_id(connection, caller=caller, ids=ids),
                )
            )
        if len(loans) > limit:
            last = loans[limit - 1]
            page.next_page_token = self._pages.encode(
                {**scope, "time": last.create_time.isoformat(), "id": last.id}
            )
        return response

    @mutation(pb.UpdateLoanResponse)
    def UpdateLoan(
        self, request: pb.UpdateLoanRequest, caller: Caller
    ) -> Write[pb.UpdateLoanResponse]:
        """Change the fields named in update_mask of a DRAFT loan (borrower)."""
        paths, values = list(request.update_mask.paths), conversions.loan_form(request)
        return lambda session: pb.UpdateLoanResponse(
            loan=loan_to_proto(
                terms.update_loan(
                    session,
                    caller=caller,
                    loan_id=request.loan_id,
                    etag=request.etag,
                    paths=paths,
                    values=values,
                )
            )
        )

    @mutation(pb.DeleteLoanResponse)
    def DeleteLoan(
        self, request: pb.DeleteLoanRequest, caller: Caller
    ) -> Write[pb.DeleteLoanResponse]:
        """Delete a DRAFT loan with its KPIs, ratchets, results and history (borrower)."""
        return lambda session: pb.DeleteLoanResponse(
            deletion=conversions.deletion_to_proto(
                request.loan_id,
                terms.delete_loan(
                    session, caller=caller, loan_id=request.loan_id, etag=request.etag
                ),
            )
        )

    @mutation(pb.InviteLenderResponse)
    def InviteLender(
        self, request: pb.InviteLenderRequest, caller: Caller
    ) -> Write[pb.InviteLenderResponse]:
        """Make the organization of the lender with this email the loan's lender (borrower)."""
        require_party(caller)  # an admin is refused without troubling auth
        # Checked like any text (blank is for the use case to refuse, after the loan's scope).
        email = text_field(
            request.lender_email,
            field="lender_email",
            reason_prefix="LENDER_EMAIL",
            limit=_EMAIL_MAX_LENGTH,
            required=False,
        )
        # Asked before the transaction opens: no lock is held across a call to auth.
        lender = self._find_user(email) if email else None
        return lambda session: pb.InviteLenderResponse(
            loan=loan_to_proto(
                terms.invite_lender(
                    session,
                    caller=caller,
                    loan_id=request.loan_id,
                    etag=request.etag,
                    email=email,
                    lender=lender,
                )
            )
        )

    def _find_user(self, email: str) -> DirectoryUser | None:
        if self._users is None:
            raise UnavailableError("no user directory is configured", reason="USERS_UNAVAILABLE")
        return self._users.find_by_email(email)

    def _cursor(self, token: str, scope: Mapping[str, object]) -> tuple[datetime, str] | None:
        if not token:
            return None
        cursor = self._pages.decode(token)
        if any(cursor.get(k) != v for k, v in scope.items()):
            # A token is only good for the query that issued it.
            raise self._pages.invalid()
        return datetime.fromisoformat(cursor["time"]), cursor["id"]
