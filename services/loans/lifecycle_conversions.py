"""Between the wire and the terms and lifecycle of a loan: update forms, deletions, history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.models import LoanStateChange

__all__ = ["deletion_to_proto", "history_to_proto", "update_values"]


def update_values(request: pb.UpdateLoanRequest) -> dict[str, str]:
    """UpdateLoan's term fields as the form schema takes them: strings, the type by enum name."""
    return {
        "name": request.name,
        # An unknown enum number has no name; the schema reports it as invalid.
        "loan_type": pb.LoanType.Name(request.loan_type)
        if request.loan_type in pb.LoanType.values()
        else str(request.loan_type),
        "currency_code": request.currency_code,
        "principal_amount": request.principal_amount,
        "committed_amount": request.committed_amount,
        "drawn_amount": request.drawn_amount,
        "start_date": request.start_date,
        "maturity_date": request.maturity_date,
    }


def deletion_to_proto(loan_id: str, delete_time: datetime) -> pb.LoanDeletion:
    return pb.LoanDeletion(loan_id=loan_id, delete_time=_timestamp(delete_time))


def history_to_proto(changes: Sequence[LoanStateChange]) -> pb.LoanHistory:
    return pb.LoanHistory(changes=[_state_change(change) for change in changes])


def _state_change(change: LoanStateChange) -> pb.StateChange:
    return pb.StateChange(
        from_state=pb.LoanState.Value(f"LOAN_STATE_{change.from_state}"),
        to_state=pb.LoanState.Value(f"LOAN_STATE_{change.to_state}"),
        actor_user_id=change.actor_user_id,
        actor_organization_id=change.actor_organization_id,
        reason=change.reason,
        change_time=_timestamp(change.change_time),
    )


def _timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp
