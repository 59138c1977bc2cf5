"""The loan lifecycle as data: which party moves a loan from which states to which.

    DRAFT → PENDING_APPROVAL → APPROVED → ACTIVE → CLOSED
    PENDING_APPROVAL → REJECTED;  DRAFT | PENDING_APPROVAL → WITHDRAWN

Each transition is one ``Transition`` value (SUBMIT, APPROVE, …); ``transition_loan`` runs
any of them the same way: visibility, party, validation, etag, state, guards, then the
write with its history row, audit event and change notification. An illegal
transition is FAILED_PRECONDITION naming the rule, never a silent no-op.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from services.loans.aggregate import (
    Event,
    LoanChange,
    Party,
    check_etag,
    created,
    diff,
    load_loan,
    save,
)
from services.loans.models import Kpi, Loan, LoanStateChange
from services.loans.vocabulary import ChangeKind, KpiStatus, LoanState
from services.shared.errors import FailedPreconditionError
from services.shared.identity import Caller, Role
from services.shared.validation import parse_reason

__all__ = [
    "ACTIVATE",
    "APPROVE",
    "CLOSE",
    "REJECT",
    "SUBMIT",
    "TRANSITIONS",
    "WITHDRAW",
    "Transition",
    "list_loan_history",
    "transition_loan",
]

# A rule a transition checks on the locked loan, on today's business date.
Guard = Callable[[Session, Loan, date], None]


def _needs_lender(session: Session, loan: Loan, today: date) -> None:
    if not loan.lender_organization_id:
        raise FailedPreconditionError(
            "invite a lender before submitting the loan", reason="LENDER_REQUIRED"
        )


def _needs_kpis(session: Session, loan: Loan, today: date) -> None:
    if not session.scalar(select(exists().where(Kpi.loan_id == loan.id))):
        raise FailedPreconditionError("the loan needs at least one KPI", reason="KPIS_REQUIRED")


def _needs_all_kpis_accepted(session: Session, loan: Loan, today: date) -> None:
    pending = exists().where(Kpi.loan_id == loan.id, Kpi.status != KpiStatus.ACCEPTED)
    if session.scalar(select(pending)):
        raise FailedPreconditionError(
            "every KPI must be accepted first", reason="KPIS_NOT_ALL_ACCEPTED"
        )


def _needs_start_date(session: Session, loan: Loan, today: date) -> None:
    if today < loan.start_date:
        raise FailedPreconditionError(
            f"the loan starts on {loan.start_date.isoformat()}; it can be activated from then",
            reason="LOAN_NOT_STARTED",
        )


@dataclass(frozen=True)
class Transition:
    """One lifecycle move: who may make it, from where to where, and what it is called."""

    party: Role
    from_states: frozenset[LoanState]
    to_state: LoanState
    illegal_reason: str  # the FAILED_PRECONDITION reason when the loan is in another state
    action: str  # the audit event, past tense
    guards: tuple[Guard, ...] = ()
    needs_reason: bool = False  # the caller must say why (rejections)


def _move(*from_states: LoanState) -> frozenset[LoanState]:
    return frozenset(from_states)


_S = LoanState
SUBMIT: Final = Transition(
    Party.BORROWER,
    _move(_S.DRAFT),
    _S.PENDING_APPROVAL,
    "LOAN_NOT_DRAFT",
    "LOAN_SUBMITTED",
    guards=(_needs_lender, _needs_kpis),
)
APPROVE: Final = Transition(
    Party.LENDER,
    _move(_S.PENDING_APPROVAL),
    _S.APPROVED,
    "LOAN_NOT_PENDING_APPROVAL",
    "LOAN_APPROVED",
    # KPIs may be deleted while pending; a loan with none links nothing to sustainability.
    guards=(_needs_kpis, _needs_all_kpis_accepted),
)
REJECT: Final = Transition(
    Party.LENDER,
    _move(_S.PENDING_APPROVAL),
    _S.REJECTED,
    "LOAN_NOT_PENDING_APPROVAL",
    "LOAN_REJECTED",
    needs_reason=True,
)
WITHDRAW: Final = Transition(
    Party.BORROWER,
    _move(_S.DRAFT, _S.PENDING_APPROVAL),
    _S.WITHDRAWN,
    "LOAN_NOT_DRAFT_OR_PENDING",
    "LOAN_WITHDRAWN",
)
ACTIVATE: Final = Transition(
    Party.LENDER,
    _move(_S.APPROVED),
    _S.ACTIVE,
    "LOAN_NOT_APPROVED",
    "LOAN_ACTIVATED",
    guards=(_needs_start_date,),
)
CLOSE: Final = Transition(
    Party.LENDER, _move(_S.ACTIVE), _S.CLOSED, "LOAN_NOT_ACTIVE", "LOAN_CLOSED"
)
TRANSITIONS: Final = (SUBMIT, APPROVE, REJECT, WITHDRAW, ACTIVATE, CLOSE)


def transition_loan(
    session: Session,
    *,
    caller: Caller,
    transition: Transition,
    loan_id: str,
    etag: str,
    today: date,
    reason: str = "",
) -> Loan:
    """Move the loan along one lifecycle transition, recording who, when and why."""
    loan = load_loan(
        session, caller=caller, loan_id=loan_id, party=transition.party, for_update=True
    )
    reason = parse_reason(reason) if transition.needs_reason else ""
    check_etag(loan.etag, etag)
    loan.require_state(transition.from_states, reason=transition.illegal_reason)
    for guard in transition.guards:
        guard(session, loan, today)
    now = datetime.now(UTC)  # one instant for the history row, the event and the loan
    before, loan.state = loan.state, transition.to_state
    _record_history(session, caller, loan, before, reason, now)
    changes = diff({"state": before}, {"state": loan.state})
    if reason:
        changes += created({"reason": reason})
    event = Event(transition.action, "loan", loan.id, changes)
    save(session, LoanChange(caller, loan, ChangeKind.STATE_CHANGED, [event], now))
    return loan


def list_loan_history(session: Session, *, caller: Caller, loan_id: str) -> list[LoanStateChange]:
    """The loan's state changes, oldest first, for either party."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.EITHER)
    query = (
        select(LoanStateChange)
        .where(LoanStateChange.loan_id == loan.id)
        # Transitions of one loan hold its row lock, so ids follow commit order; clocks may not.
        .order_by(LoanStateChange.id)
    )
    return list(session.scalars(query))


def _record_history(
    session: Session,
    caller: Caller,
    loan: Loan,
    from_state: LoanState,
    reason: str,
    now: datetime,
) -> None:
    session.add(
        LoanStateChange(
            loan_id=loan.id,
            from_state=from_state,
            to_state=loan.state,
            actor_user_id=caller.user_id,
            actor_organization_id=caller.organization_id,
            reason=reason,
            change_time=now,
        )
    )
