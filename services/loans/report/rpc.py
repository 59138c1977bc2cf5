"""GetLoanReport: the loan with everything that belongs to it, in one answer."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy.orm import Session

from services.loans.calendar import use_cases as calendar
from services.loans.calendar.misses import unrecorded
from services.loans.report.conversions import report_to_proto
from services.loans.report.use_cases import gather_report
from services.loans.rpc import LoanRpcBase
from services.shared.envelope import unary

__all__ = ["ReportRpcs"]


class ReportRpcs(LoanRpcBase):
    @unary(pb.GetLoanReportResponse)
    def GetLoanReport(
        self, request: pb.GetLoanReportRequest, context: grpc.ServicerContext
    ) -> pb.GetLoanReportResponse:
        """Return the loan with its parties, KPIs, results, calendar, margins, ledger, history."""
        caller, today = self._caller(context), self._today()
        with self._db.read() as session:
            report = gather_report(session, caller=caller, loan_id=request.loan_id, today=today)
            if not unrecorded(report.loan, report.obligations):
                return pb.GetLoanReportResponse(report=report_to_proto(report))

        # As the calendar does: a miss seen for the first time is recorded (with its
        # step-up) before anyone reads it, so the schedule and the calendar agree.
        def record(session: Session) -> None:
            calendar.record_observed_misses(
                session,
                caller=caller,
                loan_id=request.loan_id,
                kpi_id="",
                today=today,
                now=datetime.now(UTC),
            )

        self._db.submit(record)
        with self._db.read() as session:
            report = gather_report(session, caller=caller, loan_id=request.loan_id, today=today)
            return pb.GetLoanReportResponse(report=report_to_proto(report))
