"""Between the wire (loan_service.proto) and the reporting calendar."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.calendar.obligations import Obligation
from services.loans.models import Loan

__all__ = ["calendar_to_proto"]


def calendar_to_proto(
    loan: Loan, obligations: Sequence[Obligation], today: date
) -> pb.ReportingCalendar:
    return pb.ReportingCalendar(
        loan_id=loan.id,
        as_of_date=today.isoformat(),
        reporting_grace_days=loan.reporting_grace_days,
        obligations=[_obligation(o) for o in obligations],
    )


def _obligation(obligation: Obligation) -> pb.ReportingObligation:
    miss = obligation.miss
    return pb.ReportingObligation(
        kpi_id=obligation.kpi_id,
        period_start=obligation.period.start.isoformat(),
        period_end=obligation.period.end.isoformat(),
        due_date=obligation.due.isoformat(),
        status=pb.ReportingStatus.Value(obligation.status.wire),
        kpi_result_id=obligation.result_id or "",
        missed_adjustment_id=(miss.margin_adjustment_id or "") if miss else "",
    )
