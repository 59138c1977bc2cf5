"""Margin ratchet use cases: how a KPI's verified results move the loan's margin.

A ratchet belongs to one KPI of the loan (at most one per KPI) and, like the
KPIs, changes only while the loan is DRAFT or PENDING_APPROVAL, by its borrower.
A ratchet is part of what the lender accepts with its KPI: creating, changing or
deleting it sends a reviewed KPI back to PROPOSED (KPI_REVIEW_REOPENED).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.loans.aggregate import (
    Changes,
    Event,
    LoanChange,
    Party,
    check_etag,
    created,
    deleted,
    diff,
    is_uuid,
    load_loan,
    load_part,
    save,
)
from services.loans.kpis.schemas import RatchetBps, parse_ratchet
from services.loans.kpis.use_cases import reopen_reviews, require_editable
from services.loans.models import Kpi, Loan, MarginRatchet
from services.loans.vocabulary import ChangeKind
from services.shared.errors import AlreadyExistsError, ValidationError
from services.shared.identity import Caller
from services.shared.validation import apply_mask

__all__ = ["create_margin_ratchet", "delete_margin_ratchet", "update_margin_ratchet"]


def create_margin_ratchet(
    session: Session, *, caller: Caller, loan_id: str, kpi_id: str, bps: Mapping[str, int]
) -> MarginRatchet:
    """Attach a ratchet to a KPI of the borrower's loan; audit MARGIN_RATCHET_CREATED."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.BORROWER, for_update=True)
    values = parse_ratchet(bps)
    kpi = _kpi_of(session, loan, kpi_id)
    require_editable(loan)
    if session.scalar(select(MarginRatchet.id).where(MarginRatchet.kpi_id == kpi.id)):
        raise AlreadyExistsError(
            "the KPI already has a margin ratchet; update that one", reason="RATCHET_EXISTS"
        )
    now = datetime.now(UTC)
    ratchet = MarginRatchet(
        id=str(uuid.uuid4()), loan_id=loan.id, kpi_id=kpi.id, create_time=now, update_time=now
    )
    _assign(ratchet, values)
    session.add(ratchet)
    changes = created(_described(ratchet))
    _save(session, caller, loan, "MARGIN_RATCHET_CREATED", ratchet, changes, now, kpi)
    return ratchet


def update_margin_ratchet(
    session: Session,
    *,
    caller: Caller,
    ratchet_id: str,
    etag: str,
    paths: Sequence[str],
    bps: Mapping[str, int],
) -> MarginRatchet:
    """Change the masked basis points of a ratchet; audit MARGIN_RATCHET_UPDATED."""
    loan, ratchet = _load(session, caller, ratchet_id)
    values = parse_ratchet(apply_mask(_bps(ratchet), bps, paths))
    check_etag(ratchet.etag, etag, what="margin ratchet")
    require_editable(loan)
    now = datetime.now(UTC)
    before = _described(ratchet)
    _assign(ratchet, values)
    ratchet.update_time = now
    changes = diff(before, _described(ratchet))
    kpi = session.get_one(Kpi, ratchet.kpi_id) if changes else None  # the same values: no change
    _save(session, caller, loan, "MARGIN_RATCHET_UPDATED", ratchet, changes, now, kpi)
    return ratchet


def delete_margin_ratchet(
    session: Session, *, caller: Caller, ratchet_id: str, etag: str
) -> datetime:
    """Delete a ratchet; audit MARGIN_RATCHET_DELETED."""
    loan, ratchet = _load(session, caller, ratchet_id)
    check_etag(ratchet.etag, etag, what="margin ratchet")
    require_editable(loan)
    now = datetime.now(UTC)
    session.delete(ratchet)
    changes = deleted(_described(ratchet))
    kpi = session.get_one(Kpi, ratchet.kpi_id)
    _save(session, caller, loan, "MARGIN_RATCHET_DELETED", ratchet, changes, now, kpi)
    return now


def _load(session: Session, caller: Caller, ratchet_id: str) -> tuple[Loan, MarginRatchet]:
    return load_part(
        session,
        MarginRatchet,
        ratchet_id,
        caller=caller,
        party=Party.BORROWER,
        field="ratchet_id",
        what="margin ratchet",
    )


def _kpi_of(session: Session, loan: Loan, kpi_id: str) -> Kpi:
    """The loan's KPI; a KPI of another loan is as unknown as none (never revealed)."""
    if not kpi_id:
        raise ValidationError([("kpi_id", "KPI_ID_REQUIRED", "is required")])
    kpi = None
    if is_uuid(kpi_id):  # every id is one; PostgreSQL refuses a NUL in a query
        kpi = session.scalar(select(Kpi).where(Kpi.id == kpi_id, Kpi.loan_id == loan.id))
    if kpi is None:
        raise ValidationError([("kpi_id", "KPI_NOT_IN_LOAN", "must be a KPI of this loan")])
    return kpi


def _bps(ratchet: MarginRatchet) -> dict[str, int]:
    return {
        "step_up_bps": ratchet.step_up_bps,
        "step_down_bps": ratchet.step_down_bps,
        "cap_bps": ratchet.cap_bps,
    }


def _assign(ratchet: MarginRatchet, values: RatchetBps) -> None:
    ratchet.step_up_bps = values.step_up_bps
    ratchet.step_down_bps = values.step_down_bps
    ratchet.cap_bps = values.cap_bps


def _described(ratchet: MarginRatchet) -> dict[str, str | int]:
    return {"kpi_id": ratchet.kpi_id, **_bps(ratchet)}


def _save(
    session: Session,
    caller: Caller,
    loan: Loan,
    action: str,
    ratchet: MarginRatchet,
    changes: Changes,
    now: datetime,
    kpi: Kpi | None,
) -> None:
    """The ratchet's event, and its KPI's review reopened when the KPI had been reviewed."""
    events = [Event(action, "margin_ratchet", ratchet.id, changes)]
    if kpi is not None:
        events += reopen_reviews([kpi], cause="MARGIN_RATCHET_CHANGED", now=now)
    save(session, LoanChange(caller, loan, ChangeKind.RATCHET_CHANGED, events, now))
