"""Between the wire (loan_service.proto) and the KPI domain: KPIs, ratchets, results, margins.

Requests become plain forms (strings, enums by their proto names) for the
schemas in kpi_schemas.py; stored rows become proto messages.

Decimal outputs (baseline_value, target_value, threshold_value, value) are
rendered in their minimal plain form: no exponent and no trailing fraction
zeros, whatever the client sent or the NUMERIC(24, 6) column pads to
("12.500" → "12.5", "100.000000" → "100", "0.000001" stays). The value is
exact either way; one canonical spelling keeps etags and audit diffs free of
spurious changes. An unset threshold is the empty string.
"""

from __future__ import annotations

from typing import Any, Protocol

from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.kpi_fields import format_value
from services.loans.kpi_schemas import DIRECTION_PREFIX, FREQUENCY_PREFIX, TYPE_PREFIX
from services.loans.models import Kpi, KpiResult, MarginAdjustment, MarginRatchet
from services.shared.timestamps import timestamp

__all__ = [
    "adjustment_to_proto",
    "kpi_form",
    "kpi_to_proto",
    "ratchet_bps",
    "ratchet_to_proto",
    "result_form",
    "result_to_proto",
]

_KPI_STATUS_PREFIX = "KPI_STATUS_"
_RESULT_STATUS_PREFIX = "KPI_RESULT_STATUS_"
_OUTCOME_PREFIX = "KPI_OUTCOME_"


def kpi_form(request: pb.CreateKpiRequest | pb.UpdateKpiRequest) -> dict[str, str]:
    """A KPI's fields as the form schema takes them: strings, enums by proto name."""
    return {
        "name": request.name,
        "kpi_type": _name(pb.KpiType, request.kpi_type),
        "unit": request.unit,
        "direction": _name(pb.KpiDirection, request.direction),
        "baseline_value": request.baseline_value,
        "target_value": request.target_value,
        "threshold_value": request.threshold_value,
        "observation_frequency": _name(pb.ObservationFrequency, request.observation_frequency),
        "effective_from": request.effective_from,
        "effective_to": request.effective_to,
    }


def ratchet_bps(
    request: pb.CreateMarginRatchetRequest | pb.UpdateMarginRatchetRequest,
) -> dict[str, int]:
    return {
        "step_up_bps": request.step_up_bps,
        "step_down_bps": request.step_down_bps,
        "cap_bps": request.cap_bps,
    }


def result_form(request: pb.ReportKpiResultRequest) -> dict[str, str]:
    return {
        "period_start": request.period_start,
        "period_end": request.period_end,
        "value": request.value,
        "note": request.note,
    }


def kpi_to_proto(kpi: Kpi) -> pb.Kpi:
    return pb.Kpi(
        id=kpi.id,
        loan_id=kpi.loan_id,
        name=kpi.name,
        kpi_type=pb.KpiType.Value(f"{TYPE_PREFIX}{kpi.kpi_type}"),
        unit=kpi.unit,
        direction=pb.KpiDirection.Value(f"{DIRECTION_PREFIX}{kpi.direction}"),
        baseline_value=format_value(kpi.baseline_value),
        target_value=format_value(kpi.target_value),
        threshold_value="" if kpi.threshold_value is None else format_value(kpi.threshold_value),
        observation_frequency=pb.ObservationFrequency.Value(
            f"{FREQUENCY_PREFIX}{kpi.observation_frequency}"
        ),
        effective_from=kpi.effective_from.isoformat(),
        effective_to=kpi.effective_to.isoformat(),
        status=pb.KpiStatus.Value(f"{_KPI_STATUS_PREFIX}{kpi.status}"),
        rejection_reason=kpi.rejection_reason,
        etag=kpi.etag,
        create_time=timestamp(kpi.create_time),
        update_time=timestamp(kpi.update_time),
    )


def ratchet_to_proto(ratchet: MarginRatchet) -> pb.MarginRatchet:
    return pb.MarginRatchet(
        id=ratchet.id,
        loan_id=ratchet.loan_id,
        kpi_id=ratchet.kpi_id,
        step_up_bps=ratchet.step_up_bps,
        step_down_bps=ratchet.step_down_bps,
        cap_bps=ratchet.cap_bps,
        etag=ratchet.etag,
        create_time=timestamp(ratchet.create_time),
        update_time=timestamp(ratchet.update_time),
    )


def result_to_proto(result: KpiResult) -> pb.KpiResult:
    message = pb.KpiResult(
        id=result.id,
        loan_id=result.loan_id,
        kpi_id=result.kpi_id,
        period_start=result.period_start.isoformat(),
        period_end=result.period_end.isoformat(),
        value=format_value(result.value),
        note=result.note,
        status=pb.KpiResultStatus.Value(f"{_RESULT_STATUS_PREFIX}{result.status}"),
        restates_result_id=result.restates_result_id or "",
        superseded_by_result_id=result.superseded_by_result_id or "",
        reporter_user_id=result.reporter_user_id,
        verifier_user_id=result.verifier_user_id or "",
        report_time=timestamp(result.report_time),
        etag=result.etag,
    )
    if result.outcome is not None:
        message.outcome = pb.KpiOutcome.Value(f"{_OUTCOME_PREFIX}{result.outcome}")
    if result.verify_time is not None:
        message.verify_time.CopyFrom(timestamp(result.verify_time))
    return message


def adjustment_to_proto(adjustment: MarginAdjustment) -> pb.MarginAdjustment:
    return pb.MarginAdjustment(
        id=adjustment.id,
        loan_id=adjustment.loan_id,
        kpi_id=adjustment.kpi_id,
        kpi_result_id=adjustment.kpi_result_id,
        ratchet_id=adjustment.ratchet_id,
        outcome=pb.KpiOutcome.Value(f"{_OUTCOME_PREFIX}{adjustment.outcome}"),
        requested_bps=adjustment.requested_bps,
        applied_bps=adjustment.applied_bps,
        cumulative_bps=adjustment.cumulative_bps,
        create_time=timestamp(adjustment.create_time),
    )


class _ProtoEnum(Protocol):
    def Name(self, number: Any, /) -> str: ...

    def values(self) -> list[Any]: ...


def _name(enum: _ProtoEnum, number: int) -> str:
    # An unknown enum number has no name; the schema reports it as invalid.
    return enum.Name(number) if number in enum.values() else str(number)
