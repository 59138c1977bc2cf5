"""Gathering a loan's report: every part of the loan, read in one read transaction.

One snapshot makes the parts agree with each other (the ledger with the loan's
balances, the schedule with the adjustments listed): SQLite's read transaction
is one, and on PostgreSQL the transaction asks for REPEATABLE READ. The report is as
organization-scoped as GetLoan: a loan of another organization is NOT_FOUND.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from services.loans.aggregate import Party, load_loan
from services.loans.calendar.obligations import Obligation, loan_obligations
from services.loans.facility.schedule import MarginPeriod
from services.loans.facility.use_cases import schedule_of
from services.loans.models import (
    Drawdown,
    Kpi,
    KpiResult,
    LedgerEntry,
    Loan,
    LoanStateChange,
    MarginAdjustment,
    MarginRatchet,
)
from services.shared.identity import Caller

__all__ = ["KpiPart", "LoanReport", "gather_report"]


@dataclass(frozen=True)
class KpiPart:
    """A KPI with its ratchet, if any, and its results by period, superseded ones included."""

    kpi: Kpi
    ratchet: MarginRatchet | None
    results: list[KpiResult]


@dataclass(frozen=True)
class LoanReport:
    """Everything that belongs to one loan, as of generate_time."""

    loan: Loan
    kpis: list[KpiPart]
    adjustments: list[MarginAdjustment]
    schedule: list[MarginPeriod]
    drawdowns: list[Drawdown]
    ledger: list[LedgerEntry]
    history: list[LoanStateChange]
    obligations: list[Obligation]
    today: date  # the business date the calendar's statuses are judged on
    generate_time: datetime


def gather_report(session: Session, *, caller: Caller, loan_id: str, today: date) -> LoanReport:
    """The loan with its KPIs, ratchets, results, margins, drawdowns, ledger and history."""
    if session.get_bind().dialect.name == "postgresql":
        # Before the first query: every statement then reads the same snapshot.
        session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.EITHER)
    adjustments = select(MarginAdjustment).where(MarginAdjustment.loan_id == loan.id)
    drawdowns = select(Drawdown).where(Drawdown.loan_id == loan.id)
    ledger = select(LedgerEntry).where(LedgerEntry.loan_id == loan.id)
    history = select(LoanStateChange).where(LoanStateChange.loan_id == loan.id)
    parts = _kpi_parts(session, loan)
    return LoanReport(
        loan=loan,
        kpis=parts,
        adjustments=list(
            session.scalars(adjustments.order_by(MarginAdjustment.create_time, MarginAdjustment.id))
        ),
        schedule=schedule_of(session, loan),
        drawdowns=list(session.scalars(drawdowns.order_by(Drawdown.request_time, Drawdown.id))),
        ledger=list(session.scalars(ledger.order_by(LedgerEntry.sequence))),
        # Transitions of one loan hold its row lock, so ids follow commit order.
        history=list(session.scalars(history.order_by(LoanStateChange.id))),
        obligations=loan_obligations(
            session, loan=loan, kpis=[part.kpi for part in parts], today=today
        ),
        today=today,
        generate_time=datetime.now(UTC),
    )


def _kpi_parts(session: Session, loan: Loan) -> list[KpiPart]:
    query = select(Kpi).where(Kpi.loan_id == loan.id).order_by(Kpi.create_time, Kpi.id)
    kpis = list(session.scalars(query))
    of_loan = select(MarginRatchet).where(MarginRatchet.loan_id == loan.id)
    ratchets = {ratchet.kpi_id: ratchet for ratchet in session.scalars(of_loan)}
    results: dict[str, list[KpiResult]] = {kpi.id: [] for kpi in kpis}
    ordered = (
        select(KpiResult)
        .where(KpiResult.loan_id == loan.id)
        .order_by(KpiResult.period_start, KpiResult.report_time, KpiResult.id)
    )
    for result in session.scalars(ordered):
        results[result.kpi_id].append(result)
    return [KpiPart(kpi, ratchets.get(kpi.id), results[kpi.id]) for kpi in kpis]
