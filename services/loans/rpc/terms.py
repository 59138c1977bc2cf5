"""UpdateLoan, DeleteLoan and InviteLender: the borrower's terms of a DRAFT loan."""

from __future__ import annotations

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy.orm import Session

from services.loans import conversions, lifecycle_conversions, terms
from services.loans.access import require_party
from services.loans.conversions import loan_to_proto
from services.loans.rpc.base import LoanRpcBase
from services.shared.auth_client import DirectoryUser
from services.shared.envelope import unary
from services.shared.errors import UnavailableError

__all__ = ["TermsRpcs"]


class TermsRpcs(LoanRpcBase):
    @unary(pb.UpdateLoanResponse)
    def UpdateLoan(
        self, request: pb.UpdateLoanRequest, context: grpc.ServicerContext
    ) -> pb.UpdateLoanResponse:
        """Change the fields named in update_mask of a DRAFT loan (borrower)."""
        caller = self._caller(context)
        paths = list(request.update_mask.paths)
        values = conversions.loan_form(request)
        return self._mutate(
            "UpdateLoan",
            request,
            caller,
            pb.UpdateLoanResponse.FromString,
            lambda session: pb.UpdateLoanResponse(
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
            ),
        )

    @unary(pb.DeleteLoanResponse)
    def DeleteLoan(
        self, request: pb.DeleteLoanRequest, context: grpc.ServicerContext
    ) -> pb.DeleteLoanResponse:
        """Delete a DRAFT loan with its KPIs, ratchets, results and history (borrower)."""
        caller = self._caller(context)

        def write(session: Session) -> pb.DeleteLoanResponse:
            deleted = terms.delete_loan(
                session, caller=caller, loan_id=request.loan_id, etag=request.etag
            )
            return pb.DeleteLoanResponse(
                deletion=lifecycle_conversions.deletion_to_proto(request.loan_id, deleted)
            )

        return self._mutate("DeleteLoan", request, caller, pb.DeleteLoanResponse.FromString, write)

    @unary(pb.InviteLenderResponse)
    def InviteLender(
        self, request: pb.InviteLenderRequest, context: grpc.ServicerContext
    ) -> pb.InviteLenderResponse:
        """Make the organization of the lender with this email the loan's lender (borrower)."""
        caller = self._caller(context)
        require_party(caller)  # an admin is refused without troubling auth
        email = request.lender_email.strip()
        # Asked before the transaction opens: no lock is held across a call to auth.
        lender = self._find_user(email) if email else None
        return self._mutate(
            "InviteLender",
            request,
            caller,
            pb.InviteLenderResponse.FromString,
            lambda session: pb.InviteLenderResponse(
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
            ),
        )

    def _find_user(self, email: str) -> DirectoryUser | None:
        if self._users is None:
            raise UnavailableError("no user directory is configured", reason="USERS_UNAVAILABLE")
        return self._users.find_by_email(email)
