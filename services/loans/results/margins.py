"""Margin adjustments: what a verified result does to the loan's margin under its KPI's ratchet.

A KPI's margin total is the clamped running sum, in verification order, of
what its standing (not superseded) verified results requested: -step_down_bps
for a pass, +step_up_bps for a miss, the total kept within ±cap_bps. Without
restatements this is the plain rule "previous total plus requested, clamped".
When a verified result is restated, its request drops out of the sum, so that
verifying the restatement replaces its effect rather than adding to it.
``applied_bps`` is always the new total minus the previous one, so a KPI's
applied amounts add up to its latest ``cumulative_bps``.

A period missed on the reporting calendar (calendar/misses.py) asks for
+step_up_bps like a failed result, with no result behind it. It stands only
while its period has no standing verified result: a late verification of that
period replaces the miss, as a verified restatement replaces what it restated.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, exists, func, or_, select, tuple_
from sqlalchemy.orm import Session, aliased

from services.loans.models import KpiResult, Loan, MarginAdjustment, MarginRatchet
from services.loans.vocabulary import KpiOutcome, KpiResultStatus

__all__ = ["AdjustmentCursor", "adjust_margin", "list_margin_adjustments", "step_up_for_miss"]


@dataclass(frozen=True)
class AdjustmentCursor:
    """Position after the last adjustment of a page (oldest first)."""

    create_time: datetime
    adjustment_id: str


def adjust_margin(
    session: Session, *, loan: Loan, result: KpiResult, passed: bool, now: datetime
) -> MarginAdjustment | None:
    """Record the margin adjustment of a verified result; None when its KPI has no ratchet."""
    adjustment = _adjusted(session, result.kpi_id, passed=passed)
    if adjustment is not None:
        adjustment.kpi_result_id = result.id
        adjustment.period_start, adjustment.period_end = result.period_start, result.period_end
        _add(session, adjustment, loan, now)
    return adjustment


def step_up_for_miss(
    session: Session,
    *,
    loan: Loan,
    kpi_id: str,
    period: tuple[date, date],
    due: date,
    now: datetime,
) -> MarginAdjustment | None:
    """Record the step-up of a period missed by its due date; None when the KPI has no ratchet."""
    adjustment = _adjusted(session, kpi_id, passed=False)
    if adjustment is not None:
        (adjustment.period_start, adjustment.period_end), adjustment.due_date = period, due
        _add(session, adjustment, loan, now)
    return adjustment


def _adjusted(session: Session, kpi_id: str, *, passed: bool) -> MarginAdjustment | None:
    """The KPI's next adjustment, of a pass or a miss, clamped: not yet tied to its cause."""
    ratchet = session.scalar(select(MarginRatchet).where(MarginRatchet.kpi_id == kpi_id))
    if ratchet is None:
        return None
    requested = -ratchet.step_down_bps if passed else ratchet.step_up_bps
    previous = session.scalar(
        select(func.coalesce(func.sum(MarginAdjustment.applied_bps), 0)).where(
            MarginAdjustment.kpi_id == kpi_id
        )
    )
    standing = _standing_total(session, kpi_id, ratchet.cap_bps)
    total = _clamp(standing + requested, ratchet.cap_bps)
    return MarginAdjustment(
        id=str(uuid.uuid4()),
        kpi_id=kpi_id,
        ratchet_id=ratchet.id,
        outcome=KpiOutcome.PASSED if passed else KpiOutcome.FAILED,
        requested_bps=requested,
        applied_bps=total - int(previous or 0),
        cumulative_bps=total,
    )


def _add(session: Session, adjustment: MarginAdjustment, loan: Loan, now: datetime) -> None:
    adjustment.loan_id, adjustment.create_time = loan.id, now
    session.add(adjustment)


def list_margin_adjustments(
    session: Session, *, loan: Loan, limit: int, after: AdjustmentCursor | None
) -> list[MarginAdjustment]:
    """Up to limit adjustments of the loan, oldest first, after the cursor."""
    query = select(MarginAdjustment).where(MarginAdjustment.loan_id == loan.id)
    if after is not None:
        position = (after.create_time, after.adjustment_id)
        query = query.where(tuple_(MarginAdjustment.create_time, MarginAdjustment.id) > position)
    query = query.order_by(MarginAdjustment.create_time, MarginAdjustment.id).limit(limit)
    return list(session.scalars(query))


def _standing_total(session: Session, kpi_id: str, cap: int) -> int:
    """The clamped running sum of what the KPI's standing verified results and misses requested."""
    verified = aliased(KpiResult)
    # A miss stands until a result of its period is verified and still standing.
    replaced = exists().where(
        verified.kpi_id == MarginAdjustment.kpi_id,
        verified.period_start == MarginAdjustment.period_start,
        verified.status == KpiResultStatus.VERIFIED,
    )
    requests = session.scalars(
        select(MarginAdjustment.requested_bps)
        .outerjoin(KpiResult, KpiResult.id == MarginAdjustment.kpi_result_id)
        .where(
            MarginAdjustment.kpi_id == kpi_id,
            or_(
                and_(
                    MarginAdjustment.kpi_result_id.is_not(None),
                    KpiResult.superseded_by_result_id.is_(None),
                ),
                and_(MarginAdjustment.kpi_result_id.is_(None), ~replaced),
            ),
        )
        .order_by(MarginAdjustment.create_time, MarginAdjustment.id)
    )
    total = 0
    for requested in requests:
        total = _clamp(total + requested, cap)
    return total


def _clamp(bps: int, cap: int) -> int:
    return max(-cap, min(cap, bps))
