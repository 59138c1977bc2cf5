"""The periodic sweep: finds periods missed on ACTIVE loans that nobody has read since.

Every ``interval`` seconds it reads each ACTIVE loan's calendar and, for a loan
with a missed target not yet recorded, records it in one write (misses.py), so
that the margin steps up on time even when nobody looks. Replicas sweeping one
database at once only find less to do: misses are recorded under the loan's
row lock and a unique key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.loans.calendar.clock import Today
from services.loans.calendar.misses import lock_loan, record_misses, unrecorded
from services.loans.calendar.obligations import loan_obligations
from services.loans.models import Kpi, Loan
from services.loans.vocabulary import LoanState
from services.shared.db import Database
from services.shared.periodic import PeriodicSweep

__all__ = ["ReportingSweep"]

log = logging.getLogger("loansuite.calendar")

_PAGE: Final = 200  # ACTIVE loan ids read at a time


class ReportingSweep(PeriodicSweep):
    """Records missed periods now (``sweep``) or every ``interval`` seconds."""

    thread_name = "reporting-sweep"

    def __init__(self, db: Database, today: Today) -> None:
        self._db = db
        self._today = today
        super().__init__()

    def sweep(self) -> int:
        """Record every missed target of every ACTIVE loan; how many were recorded."""
        today, recorded, after = self._today(), 0, ""
        while not self._stopping.is_set():
            with self._db.read() as session:
                loan_ids = _active_loans(session, after)
                pending = [i for i in loan_ids if _has_unrecorded(session, i, today)]
            for loan_id in pending:
                recorded += self._db.submit(_recording(loan_id, today))
            if len(loan_ids) < _PAGE:
                break
            after = loan_ids[-1]
        if recorded:
            log.info("missed reporting periods recorded", extra={"recorded": recorded})
        return recorded


def _active_loans(session: Session, after: str) -> list[str]:
    query = (
        select(Loan.id)
        .where(Loan.state == LoanState.ACTIVE, Loan.id > after)
        .order_by(Loan.id)
        .limit(_PAGE)
    )
    return list(session.scalars(query))


def _has_unrecorded(session: Session, loan_id: str, today: date) -> bool:
    loan = session.get_one(Loan, loan_id)
    kpis = session.scalars(select(Kpi).where(Kpi.loan_id == loan_id)).all()
    return bool(unrecorded(loan, loan_obligations(session, loan=loan, kpis=kpis, today=today)))


def _recording(loan_id: str, today: date) -> Callable[[Session], int]:
    """The write that records one loan's missed targets under its row lock."""

    def write(session: Session) -> int:
        loan = lock_loan(session, loan_id)
        if loan is None:  # deleted meanwhile
            return 0
        return record_misses(session, loan=loan, today=today, now=datetime.now(UTC))

    return write
