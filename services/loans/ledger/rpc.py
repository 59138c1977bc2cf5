"""RequestDrawdown, ApproveDrawdown, RejectDrawdown, RecordRepayment and ListLedgerEntries."""

from __future__ import annotations

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy.orm import Session

from services.loans.ledger import use_cases as ledger
from services.loans.ledger.conversions import drawdown_to_proto, entry_to_proto, movement_form
from services.loans.rpc import LoanRpcBase, Write, mutation
from services.shared.envelope import unary
from services.shared.identity import Caller
from services.shared.paging import page_size
from services.shared.validation import format_amount

__all__ = ["LedgerRpcs"]


class LedgerRpcs(LoanRpcBase):
    @mutation(pb.RequestDrawdownResponse)
    def RequestDrawdown(
        self, request: pb.RequestDrawdownRequest, caller: Caller
    ) -> Write[pb.RequestDrawdownResponse]:
        """Ask to draw on an ACTIVE loan, within committed minus drawn (borrower)."""
        form = movement_form(request)

        def write(session: Session) -> pb.RequestDrawdownResponse:
            loan, drawdown = ledger.request_drawdown(
                session, caller=caller, loan_id=request.loan_id, form=form
            )
            return pb.RequestDrawdownResponse(
                drawdown=drawdown_to_proto(drawdown, loan.currency_code)
            )

        return write

    @mutation(pb.ApproveDrawdownResponse)
    def ApproveDrawdown(
        self, request: pb.ApproveDrawdownRequest, caller: Caller
    ) -> Write[pb.ApproveDrawdownResponse]:
        """Fund a requested drawdown and write it to the ledger (lender)."""

        def write(session: Session) -> pb.ApproveDrawdownResponse:
            loan, drawdown, entry = ledger.approve_drawdown(
                session, caller=caller, drawdown_id=request.drawdown_id, etag=request.etag
            )
            currency = loan.currency_code
            approval = pb.DrawdownApproval(
                drawdown=drawdown_to_proto(drawdown, currency),
                entry=entry_to_proto(entry, currency),
            )
            return pb.ApproveDrawdownResponse(approval=approval)

        return write

    @mutation(pb.RejectDrawdownResponse)
    def RejectDrawdown(
        self, request: pb.RejectDrawdownRequest, caller: Caller
    ) -> Write[pb.RejectDrawdownResponse]:
        """Refuse a requested drawdown, with a reason (lender)."""

        def write(session: Session) -> pb.RejectDrawdownResponse:
            loan, drawdown = ledger.reject_drawdown(
                session,
                caller=caller,
                drawdown_id=request.drawdown_id,
                etag=request.etag,
                reason=request.reason,
            )
            return pb.RejectDrawdownResponse(
                drawdown=drawdown_to_proto(drawdown, loan.currency_code)
            )

        return write

    @mutation(pb.RecordRepaymentResponse)
    def RecordRepayment(
        self, request: pb.RecordRepaymentRequest, caller: Caller
    ) -> Write[pb.RecordRepaymentResponse]:
        """Write a repayment of at most the outstanding amount to the ledger (lender)."""
        form = movement_form(request)

        def write(session: Session) -> pb.RecordRepaymentResponse:
            loan, entry = ledger.record_repayment(
                session, caller=caller, loan_id=request.loan_id, form=form
            )
            return pb.RecordRepaymentResponse(entry=entry_to_proto(entry, loan.currency_code))

        return write

    @unary(pb.ListLedgerEntriesResponse)
    def ListLedgerEntries(
        self, request: pb.ListLedgerEntriesRequest, context: grpc.ServicerContext
    ) -> pb.ListLedgerEntriesResponse:
        """Page through the loan's ledger, oldest first, with its balances now (either party)."""
        caller = self._caller(context)
        limit = page_size(request.page_size, default=25, maximum=100)
        with self._db.read() as session:
            after = self._ledger_cursor(request.page_token, request.loan_id)
            loan, found = ledger.list_ledger_entries(
                session, caller=caller, loan_id=request.loan_id, limit=limit + 1, after=after
            )
            currency = loan.currency_code
            response = pb.ListLedgerEntriesResponse()  # filled in place, not copied
            page = response.page
            page.entries.extend(entry_to_proto(entry, currency) for entry in found[:limit])
            page.currency_code = currency
            page.drawn_amount = format_amount(loan.drawn_amount, currency)
            page.outstanding_amount = format_amount(loan.outstanding_amount, currency)
        if len(found) > limit:
            page.next_page_token = self._pages.encode(
                {"loan": loan.id, "sequence": found[limit - 1].sequence}
            )
        return response

    def _ledger_cursor(self, token: str, loan_id: str) -> int:
        if not token:
            return 0
        cursor = self._pages.decode(token)
        sequence = cursor.get("sequence")
        if cursor.get("loan") != loan_id or not isinstance(sequence, int):
            raise self._pages.invalid()  # a token is only good for the loan that issued it
        return sequence
