"""Drawdowns and repayments: the borrower requests, the lender approves or rejects, and repays.

The loan's drawn_amount starts at what its terms say was drawn when it was
agreed; every approved drawdown adds to it and every repayment adds to
repaid_amount, each with a ledger entry in the same transaction, so the last
ledger entry always holds the loan's balances (outstanding = drawn - repaid).
Every writer locks the loan first (aggregate.load_loan / load_part) and the
check against the balances runs after that lock, inside the transaction: two
approvals of one loan queue, and the second sees the first's drawing. The
loan's version moves with each write besides (a conditional UPDATE), so a
writer that somehow read a stale loan is ABORTED rather than overdrawing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.loans.aggregate import (
    Changes,
    Event,
    LoanChange,
    Party,
    check_etag,
    created,
    diff,
    load_loan,
    load_part,
    save,
)
from services.loans.ledger.schemas import parse_movement
from services.loans.models import Drawdown, LedgerEntry, Loan
from services.loans.vocabulary import ChangeKind, DrawdownStatus, LedgerEntryType, LoanState
from services.shared.errors import FailedPreconditionError, FieldViolation
from services.shared.identity import Caller
from services.shared.validation import format_amount, parse_reason

__all__ = [
    "approve_drawdown",
    "list_ledger_entries",
    "record_repayment",
    "reject_drawdown",
    "request_drawdown",
]

_ACTIVE_ONLY: Final = frozenset({LoanState.ACTIVE})


def request_drawdown(
    session: Session, *, caller: Caller, loan_id: str, form: Mapping[str, str]
) -> tuple[Loan, Drawdown]:
    """Ask to draw on an ACTIVE loan within committed minus drawn; audit DRAWDOWN_REQUESTED."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.BORROWER, for_update=True)
    movement = parse_movement(form, currency_code=loan.currency_code)
    loan.require_state(_ACTIVE_ONLY, reason="LOAN_NOT_ACTIVE")
    _check_available(loan, movement.amount)
    now = datetime.now(UTC)
    drawdown = Drawdown(
        id=str(uuid.uuid4()),
        loan_id=loan.id,
        amount=movement.amount,
        status=DrawdownStatus.REQUESTED,
        note=movement.note,
        rejection_reason="",
        requester_user_id=caller.user_id,
        request_time=now,
    )
    session.add(drawdown)
    described = {
        "amount": _money(loan, drawdown.amount),
        "note": drawdown.note,
        "status": drawdown.status,
    }
    event = Event("DRAWDOWN_REQUESTED", "drawdown", drawdown.id, created(described))
    _save(session, caller, loan, event, now)
    return loan, drawdown


def approve_drawdown(
    session: Session, *, caller: Caller, drawdown_id: str, etag: str
) -> tuple[Loan, Drawdown, LedgerEntry]:
    """Fund a REQUESTED drawdown of an ACTIVE loan (lender); audit DRAWDOWN_APPROVED."""
    loan, drawdown = _load_drawdown(session, caller, drawdown_id)
    check_etag(drawdown.etag, etag, what="drawdown")
    loan.require_state(_ACTIVE_ONLY, reason="LOAN_NOT_ACTIVE")
    _require_requested(drawdown)
    _check_available(loan, drawdown.amount)  # again: other drawdowns may have been approved
    now = datetime.now(UTC)
    before = _balances(loan)
    loan.drawn_amount += drawdown.amount
    entry = _add_entry(session, loan, LedgerEntryType.DRAWDOWN, drawdown.amount, caller, now)
    entry.drawdown_id, entry.note = drawdown.id, drawdown.note
    changes = _decide(drawdown, DrawdownStatus.APPROVED, caller, now)
    drawdown.ledger_entry_id = entry.id
    changes += created({"ledger_entry_id": entry.id})
    changes += diff(before, _balances(loan))
    _save(session, caller, loan, Event("DRAWDOWN_APPROVED", "drawdown", drawdown.id, changes), now)
    return loan, drawdown, entry


def reject_drawdown(
    session: Session, *, caller: Caller, drawdown_id: str, etag: str, reason: str
) -> tuple[Loan, Drawdown]:
    """Refuse a REQUESTED drawdown with a reason (lender); audit DRAWDOWN_REJECTED."""
    loan, drawdown = _load_drawdown(session, caller, drawdown_id)
    reason = parse_reason(reason)
    check_etag(drawdown.etag, etag, what="drawdown")
    _require_requested(drawdown)
    now = datetime.now(UTC)
    changes = _decide(drawdown, DrawdownStatus.REJECTED, caller, now)
    drawdown.rejection_reason = reason
    changes += created({"reason": reason})
    _save(session, caller, loan, Event("DRAWDOWN_REJECTED", "drawdown", drawdown.id, changes), now)
    return loan, drawdown


def record_repayment(
    session: Session, *, caller: Caller, loan_id: str, form: Mapping[str, str]
) -> tuple[Loan, LedgerEntry]:
    """Record a repayment of at most the outstanding amount (lender); audit REPAYMENT_RECORDED."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.LENDER, for_update=True)
    movement = parse_movement(form, currency_code=loan.currency_code)
    loan.require_state(_ACTIVE_ONLY, reason="LOAN_NOT_ACTIVE")
    if movement.amount > loan.outstanding_amount:
        outstanding = _money(loan, loan.outstanding_amount)
        raise FailedPreconditionError(
            f"the repayment exceeds the outstanding {outstanding}",
            reason="REPAYMENT_EXCEEDS_OUTSTANDING",
            field_violations=(FieldViolation("amount", f"must not exceed {outstanding}"),),
        )
    now = datetime.now(UTC)
    loan.repaid_amount += movement.amount
    entry = _add_entry(session, loan, LedgerEntryType.REPAYMENT, movement.amount, caller, now)
    entry.note = movement.note
    described = {
        "entry_type": entry.entry_type,
        "amount": _money(loan, entry.amount),
        "drawn_amount": _money(loan, entry.drawn_amount),
        "outstanding_amount": _money(loan, entry.outstanding_amount),
        "note": entry.note,
    }
    event = Event("REPAYMENT_RECORDED", "ledger_entry", entry.id, created(described))
    _save(session, caller, loan, event, now)
    return loan, entry


def list_ledger_entries(
    session: Session, *, caller: Caller, loan_id: str, limit: int, after: int
) -> tuple[Loan, list[LedgerEntry]]:
    """Up to limit entries of the loan after sequence number `after`, oldest first."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.EITHER)
    query = (
        select(LedgerEntry)
        .where(LedgerEntry.loan_id == loan.id, LedgerEntry.sequence > after)
        .order_by(LedgerEntry.sequence)
        .limit(limit)
    )
    return loan, list(session.scalars(query))


def _check_available(loan: Loan, amount: Decimal) -> None:
    available = loan.committed_amount - loan.drawn_amount
    if amount > available:
        left = _money(loan, max(available, Decimal(0)))
        raise FailedPreconditionError(
            f"the drawdown exceeds what is left to draw ({left})",
            reason="DRAWDOWN_EXCEEDS_AVAILABLE",
            field_violations=(FieldViolation("amount", f"must not exceed {left}"),),
        )


def _require_requested(drawdown: Drawdown) -> None:
    if drawdown.status is not DrawdownStatus.REQUESTED:
        raise FailedPreconditionError(
            f"the drawdown was already decided ({drawdown.status})",
            reason="DRAWDOWN_ALREADY_DECIDED",
        )


def _decide(drawdown: Drawdown, status: DrawdownStatus, caller: Caller, now: datetime) -> Changes:
    before = {"status": drawdown.status}
    drawdown.status, drawdown.decider_user_id, drawdown.decide_time = status, caller.user_id, now
    return diff(before, {"status": drawdown.status})


def _add_entry(
    session: Session,
    loan: Loan,
    entry_type: LedgerEntryType,
    amount: Decimal,
    caller: Caller,
    now: datetime,
) -> LedgerEntry:
    """The loan's next ledger entry, holding its balances after the movement."""
    last = session.scalar(
        select(func.max(LedgerEntry.sequence)).where(LedgerEntry.loan_id == loan.id)
    )
    entry = LedgerEntry(
        id=str(uuid.uuid4()),
        loan_id=loan.id,
        sequence=(last or 0) + 1,
        entry_type=entry_type,
        amount=amount,
        drawn_amount=loan.drawn_amount,
        outstanding_amount=loan.outstanding_amount,
        note="",
        actor_user_id=caller.user_id,
        entry_time=now,
    )
    session.add(entry)
    return entry


def _balances(loan: Loan) -> dict[str, str]:
    return {
        "drawn_amount": _money(loan, loan.drawn_amount),
        "outstanding_amount": _money(loan, loan.outstanding_amount),
    }


def _money(loan: Loan, amount: Decimal) -> str:
    return format_amount(amount, loan.currency_code)


def _load_drawdown(session: Session, caller: Caller, drawdown_id: str) -> tuple[Loan, Drawdown]:
    return load_part(
        session,
        Drawdown,
        drawdown_id,
        caller=caller,
        party=Party.LENDER,
        field="drawdown_id",
        what="drawdown",
    )


def _save(session: Session, caller: Caller, loan: Loan, event: Event, now: datetime) -> None:
    save(session, LoanChange(caller, loan, ChangeKind.LEDGER_CHANGED, [event], now))
