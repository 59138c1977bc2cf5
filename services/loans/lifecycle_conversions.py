"""Between the wire and the terms and lifecycle of a loan: deletions and history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.models import LoanStateChange
from services.shared.timestamps import timestamp

__all__ = ["deletion_to_proto", "history_to_proto"]


def deletion_to_proto(loan_id: str, delete_time: datetime) -> pb.LoanDeletion:
    return pb.LoanDeletion(loan_id=loan_id, delete_time=timestamp(delete_time))


def history_to_proto(changes: Sequence[LoanStateChange]) -> pb.LoanHistory:
    return pb.LoanHistory(changes=[_state_change(change) for change in changes])


def _state_change(change: LoanStateChange) -> pb.StateChange:
    return pb.StateChange(
        from_state=pb.LoanState.Value(f"LOAN_STATE_{change.from_state}"),
        to_state=pb.LoanState.Value(f"LOAN_STATE_{change.to_state}"),
        actor_user_id=change.actor_user_id,
        actor_organization_id=change.actor_organization_id,
        reason=change.reason,
        change_time=timestamp(change.change_time),
    )
