"""Between the wire (loan_service.proto) and a loan's report."""

from __future__ import annotations

from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.calendar.conversions import calendar_to_proto
from services.loans.facility.conversions import schedule_to_proto
from services.loans.kpis.conversions import kpi_to_proto, ratchet_to_proto
from services.loans.ledger.conversions import drawdown_to_proto, entry_to_proto
from services.loans.lifecycle.conversions import history_to_proto
from services.loans.loan.conversions import loan_to_proto
from services.loans.report.use_cases import KpiPart, LoanReport
from services.loans.results.conversions import adjustment_to_proto, result_to_proto
from services.shared.timestamps import timestamp

__all__ = ["report_to_proto"]


def report_to_proto(report: LoanReport) -> pb.LoanReport:
    loan, currency = report.loan, report.loan.currency_code
    return pb.LoanReport(
        loan=loan_to_proto(loan),
        parties=pb.LoanParties(
            borrower_organization_id=loan.borrower_organization_id,
            lender_organization_id=loan.lender_organization_id or "",
        ),
        kpis=[_kpi_part(part) for part in report.kpis],
        adjustments=[adjustment_to_proto(a) for a in report.adjustments],
        margin_schedule=schedule_to_proto(loan, report.schedule),
        drawdowns=[drawdown_to_proto(d, currency) for d in report.drawdowns],
        ledger_entries=[entry_to_proto(e, currency) for e in report.ledger],
        history=history_to_proto(report.history),
        calendar=calendar_to_proto(loan, report.obligations, report.today),
        generate_time=timestamp(report.generate_time),
    )


def _kpi_part(part: KpiPart) -> pb.KpiReport:
    message = pb.KpiReport(
        kpi=kpi_to_proto(part.kpi), results=[result_to_proto(r) for r in part.results]
    )
    if part.ratchet is not None:
        message.ratchet.CopyFrom(ratchet_to_proto(part.ratchet))
    return message
