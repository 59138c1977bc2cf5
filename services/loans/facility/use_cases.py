"""Reading a loan's margin schedule: its facility terms and the margin adjustments made so far.

Use cases take the session of the caller's transaction and never commit; they know
nothing of gRPC or protobuf.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.loans.aggregate import Party, load_loan
from services.loans.facility.periods import period_count
from services.loans.facility.schedule import Adjustment, Facility, MarginPeriod, margin_schedule
from services.loans.facility.terms import MAX_INTEREST_PERIODS
from services.loans.models import Loan, MarginAdjustment
from services.shared.errors import FailedPreconditionError
from services.shared.identity import Caller

__all__ = ["facility_of", "get_margin_schedule", "schedule_of"]


def get_margin_schedule(
    session: Session, *, caller: Caller, loan_id: str
) -> tuple[Loan, list[MarginPeriod]]:
    """The loan and its margin in each interest period, for either party."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.EITHER)
    return loan, schedule_of(session, loan)


def schedule_of(session: Session, loan: Loan) -> list[MarginPeriod]:
    """The loan's margin schedule from its terms and every margin adjustment it has."""
    facility = facility_of(loan)
    if period_count(facility.start, facility.maturity, facility.interest_period) > (
        MAX_INTEREST_PERIODS
    ):
        # Only a loan written before the bound existed can be this long; its terms can say so.
        raise FailedPreconditionError(
            f"the loan has more than {MAX_INTEREST_PERIODS} interest periods",
            reason="TOO_MANY_INTEREST_PERIODS",
        )
    rows = session.execute(
        select(
            MarginAdjustment.applied_bps, MarginAdjustment.create_time, MarginAdjustment.due_date
        ).where(MarginAdjustment.loan_id == loan.id)
    )
    # A verified result's adjustment is decided when it is made; a missed period's on its due date.
    adjustments = [
        Adjustment(applied, due if due is not None else made.date()) for applied, made, due in rows
    ]
    return list(margin_schedule(facility, adjustments))


def facility_of(loan: Loan) -> Facility:
    """The terms of the loan that its margin schedule follows."""
    return Facility(
        start=loan.start_date,
        maturity=loan.maturity_date,
        interest_period=loan.interest_period,
        base_margin_bps=loan.base_margin_bps,
        adjustment_cap_bps=loan.adjustment_cap_bps,
        adjustment_floor_bps=loan.adjustment_floor_bps,
    )
