"""Margin adjustments: what a verified result does to the loan's margin under its KPI's ratchet.

A KPI's margin total is the clamped running sum, in verification order, of
what its standing (not superseded) verified results requested: -step_down_bps
for a pass, +step_up_bps for a miss, the total kept within ±cap_bps. Without
restatements this is the plain rule "previous total plus requested, clamped".
When a verified result is restated, its request drops out of the sum, so that
verifying the restatement replaces its effect rather than adding to it.
``applied_bps`` is always the new total minus the previous one, so a KPI's
applied amounts add up to its latest ``cumulative_bps``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from services.loans.models import KpiResult, Loan, MarginAdjustment, MarginRatchet
from services.loans.vocabulary import KpiOutcome

__all__ = ["AdjustmentCursor", "adjust_margin", "list_margin_adjustments"]


@dataclass(frozen=True)
class AdjustmentCursor:
    """Position after the last adjustment of a page (oldest first)."""

    create_time: datetime
    adjustment_id: str


def adjust_margin(
    session: Session, *, loan: Loan, result: KpiResult, passed: bool, now: datetime
) -> MarginAdjustment | None:
    """Record the margin adjustment of a verified result; None when its KPI has no ratchet."""
    ratchet = session.scalar(select(MarginRatchet).where(MarginRatchet.kpi_id == result.kpi_id))
    if ratchet is None:
        return None
    requested = -ratchet.step_down_bps if passed else ratchet.step_up_bps
    previous = session.scalar(
        select(func.coalesce(func.sum(MarginAdjustment.applied_bps), 0)).where(
            MarginAdjustment.kpi_id == result.kpi_id
        )
    )
    standing = _standing_total(session, result.kpi_id, ratchet.cap_bps)
    total = _clamp(standing + requested, ratchet.cap_bps)
    adjustment = MarginAdjustment(
        id=str(uuid.uuid4()),
        loan_id=loan.id,
        kpi_id=result.kpi_id,
        kpi_result_id=result.id,
        ratchet_id=ratchet.id,
        outcome=KpiOutcome.PASSED if passed else KpiOutcome.FAILED,
        requested_bps=requested,
        applied_bps=total - int(previous or 0),
        cumulative_bps=total,
        create_time=now,
    )
    session.add(adjustment)
    return adjustment


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
    """The clamped running sum of what the KPI's standing verified results requested."""
    requests = session.scalars(
        select(MarginAdjustment.requested_bps)
        .join(KpiResult, KpiResult.id == MarginAdjustment.kpi_result_id)
        .where(MarginAdjustment.kpi_id == kpi_id, KpiResult.superseded_by_result_id.is_(None))
        .order_by(MarginAdjustment.create_time, MarginAdjustment.id)
    )
    total = 0
    for requested in requests:
        total = _clamp(total + requested, cap)
    return total


def _clamp(bps: int, cap: int) -> int:
    return max(-cap, min(cap, bps))
