"""Between the wire (loan_service.proto) and KPI results with their margin adjustments."""

from __future__ import annotations

from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.models import KpiResult, MarginAdjustment
from services.shared.timestamps import timestamp
from services.shared.validation import format_value

__all__ = ["adjustment_to_proto", "result_form", "result_to_proto"]


def result_form(request: pb.ReportKpiResultRequest) -> dict[str, str]:
    return {
        "period_start": request.period_start,
        "period_end": request.period_end,
        "value": request.value,
        "note": request.note,
    }


def result_to_proto(result: KpiResult) -> pb.KpiResult:
    message = pb.KpiResult(
        id=result.id,
        loan_id=result.loan_id,
        kpi_id=result.kpi_id,
        period_start=result.period_start.isoformat(),
        period_end=result.period_end.isoformat(),
        value=format_value(result.value),
        note=result.note,
        status=pb.KpiResultStatus.Value(result.status.wire),
        restates_result_id=result.restates_result_id or "",
        superseded_by_result_id=result.superseded_by_result_id or "",
        reporter_user_id=result.reporter_user_id,
        verifier_user_id=result.verifier_user_id or "",
        report_time=timestamp(result.report_time),
        etag=result.etag,
        breach=result.breach,
    )
    if result.outcome is not None:
        message.outcome = pb.KpiOutcome.Value(result.outcome.wire)
    if result.verify_time is not None:
        message.verify_time.CopyFrom(timestamp(result.verify_time))
    return message


def adjustment_to_proto(adjustment: MarginAdjustment) -> pb.MarginAdjustment:
    """An adjustment; a missed period's has no kpi_result_id and names its due date."""
    return pb.MarginAdjustment(
        id=adjustment.id,
        loan_id=adjustment.loan_id,
        kpi_id=adjustment.kpi_id,
        kpi_result_id=adjustment.kpi_result_id or "",
        ratchet_id=adjustment.ratchet_id,
        outcome=pb.KpiOutcome.Value(adjustment.outcome.wire),
        requested_bps=adjustment.requested_bps,
        applied_bps=adjustment.applied_bps,
        cumulative_bps=adjustment.cumulative_bps,
        create_time=timestamp(adjustment.create_time),
        period_start=adjustment.period_start.isoformat(),
        period_end=adjustment.period_end.isoformat(),
        due_date=adjustment.due_date.isoformat() if adjustment.due_date else "",
    )
