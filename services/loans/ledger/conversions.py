"""Between the wire (loan_service.proto) and drawdowns with the ledger entries they make."""

from __future__ import annotations

from decimal import Decimal

from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.models import Drawdown, LedgerEntry
from services.shared.timestamps import timestamp
from services.shared.validation import format_amount

__all__ = ["drawdown_to_proto", "entry_to_proto", "movement_form"]


def movement_form(request: pb.RequestDrawdownRequest | pb.RecordRepaymentRequest) -> dict[str, str]:
    return {"amount": request.amount, "note": request.note}


def drawdown_to_proto(drawdown: Drawdown, currency_code: str) -> pb.Drawdown:
    message = pb.Drawdown(
        id=drawdown.id,
        loan_id=drawdown.loan_id,
        amount=format_amount(drawdown.amount, currency_code),
        status=pb.DrawdownStatus.Value(drawdown.status.wire),
        note=drawdown.note,
        rejection_reason=drawdown.rejection_reason,
        requester_user_id=drawdown.requester_user_id,
        decider_user_id=drawdown.decider_user_id or "",
        request_time=timestamp(drawdown.request_time),
        ledger_entry_id=drawdown.ledger_entry_id or "",
        etag=drawdown.etag,
    )
    if drawdown.decide_time is not None:
        message.decide_time.CopyFrom(timestamp(drawdown.decide_time))
    return message


def entry_to_proto(entry: LedgerEntry, currency_code: str) -> pb.LedgerEntry:
    def money(amount: Decimal) -> str:
        return format_amount(amount, currency_code)

    return pb.LedgerEntry(
        id=entry.id,
        loan_id=entry.loan_id,
        sequence=entry.sequence,
        entry_type=pb.LedgerEntryType.Value(entry.entry_type.wire),
        amount=money(entry.amount),
        drawn_amount=money(entry.drawn_amount),
        outstanding_amount=money(entry.outstanding_amount),
        drawdown_id=entry.drawdown_id or "",
        note=entry.note,
        actor_user_id=entry.actor_user_id,
        entry_time=timestamp(entry.entry_time),
    )
