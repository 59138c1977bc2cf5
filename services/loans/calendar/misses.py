"""Missed periods: past their due date without a verified result, recorded once each.

A period found MISSED or OVERDUE counts as a missed target: it gets one
``ReportingMiss`` row, the step-up of its KPI's ratchet (results/margins.py)
and one KPI_PERIOD_MISSED audit event, whoever observes it first: a reader of
the calendar or the sweep. Observers of one loan queue on its row lock, so the
second finds the first's row; the unique key (kpi_id, period_start) backs that
up. Misses are recorded only while the loan is ACTIVE; the loans service
itself is the actor.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.loans.aggregate import Event, LoanChange, created, save
from services.loans.calendar.obligations import Obligation, loan_obligations
from services.loans.models import Kpi, Loan, MarginAdjustment, ReportingMiss
from services.loans.results.margins import step_up_for_miss
from services.loans.vocabulary import ChangeKind, LoanState, ReportingStatus
from services.shared.identity import SERVICE_SUBJECT_PREFIX, Caller, Role

__all__ = ["LOANS_SERVICE", "MISSED_TARGETS", "lock_loan", "record_misses", "unrecorded"]

# The actor of what the service observes by itself.
LOANS_SERVICE: Final = Caller(f"{SERVICE_SUBJECT_PREFIX}loans", "", Role.SERVICE)
MISSED_TARGETS: Final = frozenset({ReportingStatus.MISSED, ReportingStatus.OVERDUE})


def unrecorded(loan: Loan, obligations: Sequence[Obligation]) -> list[Obligation]:
    """The missed targets among obligations that have no miss recorded yet."""
    if loan.state is not LoanState.ACTIVE:
        return []
    return [o for o in obligations if o.status in MISSED_TARGETS and o.miss is None]


def lock_loan(session: Session, loan_id: str) -> Loan | None:
    """The loan, locked for this transaction (writers of one loan queue on its row)."""
    return session.scalar(select(Loan).where(Loan.id == loan_id).with_for_update())


def record_misses(session: Session, *, loan: Loan, today: date, now: datetime) -> int:
    """Record each missed target of the locked loan not yet recorded; how many there were."""
    kpis = session.scalars(
        select(Kpi).where(Kpi.loan_id == loan.id).order_by(Kpi.create_time, Kpi.id)
    ).all()
    found = unrecorded(loan, loan_obligations(session, loan=loan, kpis=kpis, today=today))
    events: list[Event] = []
    for index, obligation in enumerate(found):
        # Adjustments are ordered by time: a microsecond apart, they list in the order
        # their running totals were computed.
        events += _record(session, loan, obligation, now + timedelta(microseconds=index))
    if events:
        save(session, LoanChange(LOANS_SERVICE, loan, ChangeKind.RESULT_CHANGED, events, now))
    return len(found)


def _record(session: Session, loan: Loan, obligation: Obligation, now: datetime) -> list[Event]:
    """One miss: its row, its step-up (if the KPI has a ratchet) and their audit events."""
    period = obligation.period
    adjustment = step_up_for_miss(
        session,
        loan=loan,
        kpi_id=obligation.kpi_id,
        period=(period.start, period.end),
        due=obligation.due,
        now=now,
    )
    session.add(
        ReportingMiss(
            id=str(uuid.uuid4()),
            loan_id=loan.id,
            kpi_id=obligation.kpi_id,
            period_start=period.start,
            period_end=period.end,
            due_date=obligation.due,
            margin_adjustment_id=adjustment.id if adjustment else None,
            create_time=now,
        )
    )
    described = {
        "period_start": period.start.isoformat(),
        "period_end": period.end.isoformat(),
        "due_date": obligation.due.isoformat(),
        "reporting_status": obligation.status,
        "kpi_result_id": obligation.result_id or "",
    }
    events = [Event("KPI_PERIOD_MISSED", "kpi", obligation.kpi_id, created(described))]
    if adjustment is not None:
        events.append(_adjusted(adjustment))
    return events


def _adjusted(adjustment: MarginAdjustment) -> Event:
    fields = ("requested_bps", "applied_bps", "cumulative_bps")
    changes = created({name: getattr(adjustment, name) for name in fields})
    return Event("MARGIN_ADJUSTED", "margin_adjustment", adjustment.id, changes)
