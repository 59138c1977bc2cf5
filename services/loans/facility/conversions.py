"""Between the wire (loan_service.proto) and a loan's margin schedule."""

from __future__ import annotations

from collections.abc import Sequence

from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.facility.schedule import MarginPeriod
from services.loans.models import Loan

__all__ = ["schedule_to_proto"]


def schedule_to_proto(loan: Loan, periods: Sequence[MarginPeriod]) -> pb.MarginSchedule:
    return pb.MarginSchedule(
        loan_id=loan.id,
        reference_rate=pb.ReferenceRate.Value(loan.reference_rate.wire),
        interest_period=pb.InterestPeriod.Value(loan.interest_period.wire),
        base_margin_bps=loan.base_margin_bps,
        adjustment_cap_bps=loan.adjustment_cap_bps,
        adjustment_floor_bps=loan.adjustment_floor_bps,
        periods=[_period(period) for period in periods],
    )


def _period(period: MarginPeriod) -> pb.MarginPeriod:
    return pb.MarginPeriod(
        start_date=period.start.isoformat(),
        end_date=period.end.isoformat(),
        base_margin_bps=period.base_margin_bps,
        requested_adjustment_bps=period.requested_adjustment_bps,
        adjustment_bps=period.adjustment_bps,
        all_in_margin_bps=period.all_in_margin_bps,
    )
