"""Reporting calendar use cases: a loan's obligations, as either party reads them.

Reading the calendar also records the misses it finds (misses.py), in a write
of its own, so a party never sees a MISSED period whose step-up is not there.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.loans.aggregate import Party, is_uuid, load_loan
from services.loans.calendar.misses import record_misses
from services.loans.calendar.obligations import Obligation, loan_obligations
from services.loans.models import Kpi, Loan
from services.shared.errors import ValidationError
from services.shared.identity import Caller

__all__ = ["list_reporting_obligations", "record_observed_misses"]

Calendar = tuple[Loan, list[Obligation]]


def list_reporting_obligations(
    session: Session, *, caller: Caller, loan_id: str, kpi_id: str, today: date
) -> Calendar:
    """The loan's obligations on today, or one KPI's, for either party of the loan."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.EITHER)
    kpis = _kpis(session, loan, kpi_id)
    return loan, loan_obligations(session, loan=loan, kpis=kpis, today=today)


def record_observed_misses(
    session: Session, *, caller: Caller, loan_id: str, kpi_id: str, today: date, now: datetime
) -> Calendar:
    """Record the loan's misses not yet recorded, under its lock; then its obligations."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.EITHER, for_update=True)
    kpis = _kpis(session, loan, kpi_id)
    record_misses(session, loan=loan, today=today, now=now)
    return loan, loan_obligations(session, loan=loan, kpis=kpis, today=today)


def _kpis(session: Session, loan: Loan, kpi_id: str) -> list[Kpi]:
    """The loan's KPIs in creation order, or the one named; a KPI of another loan is unknown."""
    query = select(Kpi).where(Kpi.loan_id == loan.id)
    if kpi_id and not is_uuid(kpi_id):  # not an id at all: never sent to the database
        raise ValidationError([("kpi_id", "KPI_NOT_IN_LOAN", "must be a KPI of this loan")])
    if kpi_id:
        query = query.where(Kpi.id == kpi_id)
    kpis = list(session.scalars(query.order_by(Kpi.create_time, Kpi.id)))
    if kpi_id and not kpis:
        raise ValidationError([("kpi_id", "KPI_NOT_IN_LOAN", "must be a KPI of this loan")])
    return kpis
