"""Where each observation period of a loan's KPIs stands on a given day.

A period's standing result is its result that is not superseded. Statuses, on
``today``:

- UPCOMING: the loan is not running yet (never ACTIVE), or the period ends after today;
- VERIFIED: the standing result is verified;
- DUE / REPORTED: ended, due date not passed, nothing reported / a result awaits verification;
- MISSED / OVERDUE: due date passed, nothing reported / a result still awaits verification.

MISSED and OVERDUE periods are missed targets: misses.py records each once.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.loans.calendar.periods import ObservationPeriod, due_date, observation_periods
from services.loans.models import Kpi, KpiResult, Loan, ReportingMiss
from services.loans.vocabulary import KpiResultStatus, LoanState, ReportingStatus

__all__ = ["Obligation", "kpi_obligations", "loan_obligations", "status_of"]

# States in which the calendar runs: reporting starts once the loan is ACTIVE.
_RUNNING: Final = frozenset({LoanState.ACTIVE, LoanState.CLOSED})
_PeriodKey = tuple[str, datetime.date]  # (kpi_id, period_start)


@dataclass(frozen=True)
class Obligation:
    """One observation period of one KPI, its due date and where it stands."""

    kpi_id: str
    period: ObservationPeriod
    due: datetime.date
    status: ReportingStatus
    result_id: str | None
    miss: ReportingMiss | None


def status_of(
    *,
    running: bool,
    period: ObservationPeriod,
    due: datetime.date,
    result: KpiResult | None,
    today: datetime.date,
) -> ReportingStatus:
    """The status of one period on today, given its standing result (if any)."""
    if not running or today < period.end:
        return ReportingStatus.UPCOMING
    if result is not None and result.status is KpiResultStatus.VERIFIED:
        return ReportingStatus.VERIFIED
    if today <= due:
        return ReportingStatus.DUE if result is None else ReportingStatus.REPORTED
    return ReportingStatus.MISSED if result is None else ReportingStatus.OVERDUE


def loan_obligations(
    session: Session, *, loan: Loan, kpis: Sequence[Kpi], today: datetime.date
) -> list[Obligation]:
    """The obligations of the given KPIs of the loan: by KPI as given, then by period."""
    results = _standing_results(session, loan)
    misses = {(m.kpi_id, m.period_start): m for m in _misses(session, loan)}
    running = loan.state in _RUNNING
    return [
        obligation
        for kpi in kpis
        for obligation in kpi_obligations(
            kpi,
            loan.reporting_grace_days,
            results,
            misses,
            running=running,
            today=today,
        )
    ]


def kpi_obligations(
    kpi: Kpi,
    grace_days: int,
    results: dict[_PeriodKey, KpiResult],
    misses: dict[_PeriodKey, ReportingMiss],
    *,
    running: bool,
    today: datetime.date,
) -> Iterable[Obligation]:
    """One KPI's obligations, period by period."""
    periods = observation_periods(kpi.observation_frequency, kpi.effective_from, kpi.effective_to)
    for period in periods:
        due = due_date(period, grace_days)
        result = results.get((kpi.id, period.start))
        status = status_of(running=running, period=period, due=due, result=result, today=today)
        miss = misses.get((kpi.id, period.start))
        yield Obligation(kpi.id, period, due, status, result.id if result else None, miss)


def _standing_results(session: Session, loan: Loan) -> dict[_PeriodKey, KpiResult]:
    query = select(KpiResult).where(
        KpiResult.loan_id == loan.id, KpiResult.status != KpiResultStatus.SUPERSEDED
    )
    return {(r.kpi_id, r.period_start): r for r in session.scalars(query)}


def _misses(session: Session, loan: Loan) -> Sequence[ReportingMiss]:
    return session.scalars(select(ReportingMiss).where(ReportingMiss.loan_id == loan.id)).all()
