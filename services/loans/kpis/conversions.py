"""Between the wire (loan_service.proto) and KPIs with their margin ratchets.

Requests become plain forms (strings, enums by their proto names) for the
schemas in schemas.py; stored rows become proto messages.

Decimal outputs (baseline_value, target_value, threshold_value, value) are
rendered in their minimal plain form: no exponent and no trailing fraction
zeros, whatever the client sent or the NUMERIC(24, 6) column pads to
("12.500" → "12.5", "100.000000" → "100", "0.000001" stays). The value is
exact either way; one canonical spelling keeps etags and audit diffs free of
spurious changes. An unset threshold is the empty string.
"""

from __future__ import annotations

from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.models import Kpi, MarginRatchet
from services.loans.wire import enum_name
from services.shared.timestamps import timestamp
from services.shared.validation import format_value

__all__ = ["kpi_form", "kpi_to_proto", "ratchet_bps", "ratchet_to_proto"]


def kpi_form(request: pb.CreateKpiRequest | pb.UpdateKpiRequest) -> dict[str, str]:
    """A KPI's fields as the form schema takes them: strings, enums by proto name."""
    return {
        "name": request.name,
        "kpi_type": enum_name(pb.KpiType, request.kpi_type),
        "unit": request.unit,
        "direction": enum_name(pb.KpiDirection, request.direction),
        "baseline_value": request.baseline_value,
        "target_value": request.target_value,
        "threshold_value": request.threshold_value,
        "observation_frequency": enum_name(pb.ObservationFrequency, request.observation_frequency),
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


def kpi_to_proto(kpi: Kpi) -> pb.Kpi:
    return pb.Kpi(
        id=kpi.id,
        loan_id=kpi.loan_id,
        name=kpi.name,
        kpi_type=pb.KpiType.Value(kpi.kpi_type.wire),
        unit=kpi.unit,
        direction=pb.KpiDirection.Value(kpi.direction.wire),
        baseline_value=format_value(kpi.baseline_value),
        target_value=format_value(kpi.target_value),
        threshold_value="" if kpi.threshold_value is None else format_value(kpi.threshold_value),
        observation_frequency=pb.ObservationFrequency.Value(kpi.observation_frequency.wire),
        effective_from=kpi.effective_from.isoformat(),
        effective_to=kpi.effective_to.isoformat(),
        status=pb.KpiStatus.Value(kpi.status.wire),
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
