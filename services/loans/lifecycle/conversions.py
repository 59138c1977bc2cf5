"""Between the wire and a loan's lifecycle: its history of state changes."""

from __future__ import annotations

from collections.abc import Sequence

from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.models import LoanStateChange
from services.shared.timestamps import timestamp

__all__ = ["history_to_proto"]


def history_to_proto(changes: Sequence[LoanStateChange]) -> pb.LoanHistory:
    return pb.LoanHistory(changes=[_state_change(change) for change in changes])


def _state_change(change: LoanStateChange) -> pb.StateChange:
    return pb.StateChange(
        from_state=pb.LoanState.Value(change.from_state.wire),
        to_state=pb.LoanState.Value(change.to_state.wire),
        actor_user_id=change.actor_user_id,
        actor_organization_id=change.actor_organization_id,
        reason=change.reason,
        change_time=timestamp(change.change_time),
    )
