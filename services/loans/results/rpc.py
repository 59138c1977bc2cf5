"""KPI results and the margin adjustments their verification produces."""

from __future__ import annotations

from datetime import datetime

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy.orm import Session

from services.loans.loan.use_cases import get_loan
from services.loans.models import Loan
from services.loans.results import margins
from services.loans.results import use_cases as results
from services.loans.results.conversions import adjustment_to_proto, result_form, result_to_proto
from services.loans.rpc import LoanRpcBase, Write, mutation
from services.shared.envelope import unary
from services.shared.identity import Caller
from services.shared.paging import page_size

__all__ = ["ResultRpcs"]


class ResultRpcs(LoanRpcBase):
    @mutation(pb.ReportKpiResultResponse)
    def ReportKpiResult(
        self, request: pb.ReportKpiResultRequest, caller: Caller
    ) -> Write[pb.ReportKpiResultResponse]:
        """Report a KPI's value for a period of an ACTIVE loan, or restate a result (borrower)."""
        form, today = result_form(request), self._today()
        return lambda session: pb.ReportKpiResultResponse(
            kpi_result=result_to_proto(
                results.report_kpi_result(
                    session,
                    caller=caller,
                    kpi_id=request.kpi_id,
                    form=form,
                    restates_result_id=request.restates_result_id,
                    today=today,
                )
            )
        )

    @mutation(pb.VerifyKpiResultResponse)
    def VerifyKpiResult(
        self, request: pb.VerifyKpiResultRequest, caller: Caller
    ) -> Write[pb.VerifyKpiResultResponse]:
        """Verify a reported result and apply its margin adjustment, if any (lender)."""

        def write(session: Session) -> pb.VerifyKpiResultResponse:
            result, adjustment = results.verify_kpi_result(
                session, caller=caller, kpi_result_id=request.kpi_result_id, etag=request.etag
            )
            verification = pb.KpiVerification(kpi_result=result_to_proto(result))
            if adjustment is not None:
                verification.adjustment.CopyFrom(adjustment_to_proto(adjustment))
            return pb.VerifyKpiResultResponse(verification=verification)

        return write

    @unary(pb.ListKpiResultsResponse)
    def ListKpiResults(
        self, request: pb.ListKpiResultsRequest, context: grpc.ServicerContext
    ) -> pb.ListKpiResultsResponse:
        """Return the loan's results, superseded ones included, optionally of one KPI."""
        caller = self._caller(context)
        with self._db.read() as session:
            found = results.list_kpi_results(
                session, caller=caller, loan_id=request.loan_id, kpi_id=request.kpi_id
            )
            listed = pb.KpiResultList(kpi_results=[result_to_proto(r) for r in found])
            return pb.ListKpiResultsResponse(kpi_results=listed)

    @unary(pb.ListMarginAdjustmentsResponse)
    def ListMarginAdjustments(
        self, request: pb.ListMarginAdjustmentsRequest, context: grpc.ServicerContext
    ) -> pb.ListMarginAdjustmentsResponse:
        """Page through the loan's margin adjustments, oldest first (either party)."""
        caller = self._caller(context)
        with self._db.read() as session:
            loan = get_loan(session, caller=caller, loan_id=request.loan_id)
            limit = page_size(request.page_size, default=25, maximum=100)
            after = self._adjustment_cursor(request.page_token, loan)
            found = margins.list_margin_adjustments(
                session, loan=loan, limit=limit + 1, after=after
            )
        response = pb.ListMarginAdjustmentsResponse()  # filled in place, not copied
        page = response.page
        page.adjustments.extend(adjustment_to_proto(a) for a in found[:limit])
        if len(found) > limit:
            last = found[limit - 1]
            page.next_page_token = self._pages.encode(
                {"loan": loan.id, "time": last.create_time.isoformat(), "id": last.id}
            )
        return response

    def _adjustment_cursor(self, token: str, loan: Loan) -> margins.AdjustmentCursor | None:
        if not token:
            return None
        cursor = self._pages.decode(token)
        if cursor.get("loan") != loan.id or not {"time", "id"} <= cursor.keys():
            raise self._pages.invalid()  # a token is only good for the loan that issued it
        return margins.AdjustmentCursor(datetime.fromisoformat(cursor["time"]), cursor["id"])
