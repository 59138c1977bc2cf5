"""GetMarginSchedule: each interest period of a loan with its all-in margin."""

from __future__ import annotations

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.facility import use_cases
from services.loans.facility.conversions import schedule_to_proto
from services.loans.rpc import LoanRpcBase
from services.shared.envelope import unary

__all__ = ["FacilityRpcs"]


class FacilityRpcs(LoanRpcBase):
    @unary(pb.GetMarginScheduleResponse)
    def GetMarginSchedule(
        self, request: pb.GetMarginScheduleRequest, context: grpc.ServicerContext
    ) -> pb.GetMarginScheduleResponse:
        """Return the loan's interest periods from start to maturity with their margins."""
        caller = self._caller(context)
        with self._db.read() as session:
            loan, periods = use_cases.get_margin_schedule(
                session, caller=caller, loan_id=request.loan_id
            )
            return pb.GetMarginScheduleResponse(schedule=schedule_to_proto(loan, periods))
