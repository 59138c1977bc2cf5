"""ListReportingObligations: the reporting calendar of a loan."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb
from sqlalchemy.orm import Session

from services.loans.calendar import use_cases as calendar
from services.loans.calendar.conversions import calendar_to_proto
from services.loans.calendar.misses import unrecorded
from services.loans.rpc import LoanRpcBase
from services.shared.envelope import unary

__all__ = ["CalendarRpcs"]


class CalendarRpcs(LoanRpcBase):
    @unary(pb.ListReportingObligationsResponse)
    def ListReportingObligations(
        self, request: pb.ListReportingObligationsRequest, context: grpc.ServicerContext
    ) -> pb.ListReportingObligationsResponse:
        """Return each KPI period's due date and status; record misses first seen (either party)."""
        caller, today = self._caller(context), self._today()
        loan_id, kpi_id = request.loan_id, request.kpi_id
        with self._db.read() as session:
            loan, obligations = calendar.list_reporting_obligations(
                session, caller=caller, loan_id=loan_id, kpi_id=kpi_id, today=today
            )
            if not unrecorded(loan, obligations):
                found = calendar_to_proto(loan, obligations, today)
                return pb.ListReportingObligationsResponse(calendar=found)

        def write(session: Session) -> pb.ListReportingObligationsResponse:
            loan, obligations = calendar.record_observed_misses(
                session,
                caller=caller,
                loan_id=loan_id,
                kpi_id=kpi_id,
                today=today,
                now=datetime.now(UTC),
            )
            return pb.ListReportingObligationsResponse(
                calendar=calendar_to_proto(loan, obligations, today)
            )

        return self._db.submit(write)
