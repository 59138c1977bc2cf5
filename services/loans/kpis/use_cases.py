"""KPI use cases: the borrower proposes and edits KPIs, the lender accepts or rejects them.

KPIs change only while the loan is DRAFT or PENDING_APPROVAL. Any edit sends an
accepted or rejected KPI back to PROPOSED, so the lender reviews what it will
be held to (``Kpi.revise`` in models.py); so does a change its review did not
see: its ratchet changed, or another lender took the loan (``reopen_reviews``).
Use cases take the caller's session and never commit; every change goes through
the aggregate's write path.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

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
    load_loan,
    load_part,
    save,
)
from services.loans.kpis.schemas import NewKpi, parse_kpi
from services.loans.models import Kpi, Loan, MarginRatchet
from services.loans.vocabulary import ChangeKind, KpiStatus, LoanState, WireEnum
from services.shared.identity import Caller, Role
from services.shared.validation import apply_mask, format_value, parse_reason

__all__ = [
    "accept_kpi",
    "create_kpi",
    "delete_kpi",
    "list_kpis",
    "load_kpi",
    "reject_kpi",
    "reopen_reviews",
    "require_editable",
    "update_kpi",
]

_EDITABLE: Final = frozenset({LoanState.DRAFT, LoanState.PENDING_APPROVAL})


def require_editable(loan: Loan) -> None:
    """KPIs and ratchets change only while the loan is DRAFT or PENDING_APPROVAL."""
    loan.require_state(_EDITABLE, reason="LOAN_NOT_EDITABLE")


def load_kpi(
    session: Session, *, caller: Caller, kpi_id: str, party: Role | None
) -> tuple[Loan, Kpi]:
    """The locked loan and its KPI, if the caller's organization is a party to the loan."""
    return load_part(session, Kpi, kpi_id, caller=caller, party=party, field="kpi_id", what="KPI")


def create_kpi(session: Session, *, caller: Caller, loan_id: str, form: Mapping[str, str]) -> Kpi:
    """Propose a KPI for the borrower's DRAFT or PENDING_APPROVAL loan; audit KPI_CREATED."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.BORROWER, for_update=True)
    new_kpi = parse_kpi(form)
    require_editable(loan)
    now = datetime.now(UTC)
    kpi = Kpi(
        id=str(uuid.uuid4()),
        loan_id=loan.id,
        status=KpiStatus.PROPOSED,
        rejection_reason="",
        create_time=now,
        update_time=now,
    )
    _assign(kpi, new_kpi)
    session.add(kpi)
    _save(session, caller, loan, "KPI_CREATED", kpi, created(_described(kpi)), now)
    return kpi


def update_kpi(
    session: Session,
    *,
    caller: Caller,
    kpi_id: str,
    etag: str,
    paths: Sequence[str],
    form: Mapping[str, str],
) -> Kpi:
    """Change the masked fields of a KPI; it goes back to PROPOSED. Audit KPI_UPDATED."""
    loan, kpi = load_kpi(session, caller=caller, kpi_id=kpi_id, party=Party.BORROWER)
    # The merged KPI is validated as a whole: cross-field rules span old and new values.
    new_kpi = parse_kpi(apply_mask(_form_of(kpi), form, paths))
    check_etag(kpi.etag, etag, what="KPI")
    require_editable(loan)
    now = datetime.now(UTC)
    before = _described(kpi)
    _assign(kpi, new_kpi)
    kpi.revise(now)
    _save(session, caller, loan, "KPI_UPDATED", kpi, diff(before, _described(kpi)), now)
    return kpi


def delete_kpi(session: Session, *, caller: Caller, kpi_id: str, etag: str) -> datetime:
    """Delete a KPI with its ratchet (the foreign key cascades); audit KPI_DELETED."""
    loan, kpi = load_kpi(session, caller=caller, kpi_id=kpi_id, party=Party.BORROWER)
    check_etag(kpi.etag, etag, what="KPI")
    require_editable(loan)
    now = datetime.now(UTC)
    changes = deleted(_described(kpi))
    ratchet_id = session.scalar(select(MarginRatchet.id).where(MarginRatchet.kpi_id == kpi.id))
    if ratchet_id is not None:  # the event says what went with the KPI
        changes += deleted({"margin_ratchet_id": ratchet_id})
    session.delete(kpi)
    _save(session, caller, loan, "KPI_DELETED", kpi, changes, now)
    return now


def accept_kpi(session: Session, *, caller: Caller, kpi_id: str, etag: str) -> Kpi:
    """The lender accepts a PROPOSED KPI; audit KPI_ACCEPTED."""
    return _review(session, caller, kpi_id, etag, KpiStatus.ACCEPTED, "")


def reject_kpi(session: Session, *, caller: Caller, kpi_id: str, etag: str, reason: str) -> Kpi:
    """The lender rejects a PROPOSED KPI with a reason; audit KPI_REJECTED."""
    return _review(session, caller, kpi_id, etag, KpiStatus.REJECTED, reason)


def list_kpis(session: Session, *, caller: Caller, loan_id: str) -> list[Kpi]:
    """The KPIs of a loan the caller's organization borrows or lends, in creation order."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.EITHER)
    query = select(Kpi).where(Kpi.loan_id == loan.id).order_by(Kpi.create_time, Kpi.id)
    return list(session.scalars(query))


def reopen_reviews(kpis: Sequence[Kpi], *, cause: str, now: datetime) -> list[Event]:
    """Send the reviewed KPIs among kpis back to PROPOSED; one KPI_REVIEW_REOPENED each."""
    events = []
    for kpi in kpis:
        before = _described(kpi)
        if kpi.reopen_review(now):
            changes = diff(before, _described(kpi)) + created({"cause": cause})
            events.append(Event("KPI_REVIEW_REOPENED", "kpi", kpi.id, changes))
    return events


def _review(
    session: Session, caller: Caller, kpi_id: str, etag: str, status: KpiStatus, raw_reason: str
) -> Kpi:
    loan, kpi = load_kpi(session, caller=caller, kpi_id=kpi_id, party=Party.LENDER)
    reason = parse_reason(raw_reason) if status is KpiStatus.REJECTED else ""
    check_etag(kpi.etag, etag, what="KPI")
    require_editable(loan)
    now = datetime.now(UTC)
    before = _described(kpi)
    kpi.review(status, reason, now)
    action = f"KPI_{status.value}"  # KPI_ACCEPTED, KPI_REJECTED
    _save(session, caller, loan, action, kpi, diff(before, _described(kpi)), now)
    return kpi


def _assign(kpi: Kpi, new_kpi: NewKpi) -> None:
    kpi.name = new_kpi.name
    kpi.kpi_type = new_kpi.kpi_type
    kpi.unit = new_kpi.unit
    kpi.direction = new_kpi.direction
    kpi.baseline_value = new_kpi.baseline_value
    kpi.target_value = new_kpi.target_value
    kpi.threshold_value = new_kpi.threshold_value
    kpi.observation_frequency = new_kpi.observation_frequency
    kpi.effective_from = new_kpi.effective_from
    kpi.effective_to = new_kpi.effective_to


def _form_of(kpi: Kpi) -> dict[str, str]:
    """The stored KPI as wire fields, so that an update validates the merged whole."""
    return {
        "name": kpi.name,
        "kpi_type": kpi.kpi_type.wire,
        "unit": kpi.unit,
        "direction": kpi.direction.wire,
        "baseline_value": format_value(kpi.baseline_value),
        "target_value": format_value(kpi.target_value),
        "threshold_value": "" if kpi.threshold_value is None else format_value(kpi.threshold_value),
        "observation_frequency": kpi.observation_frequency.wire,
        "effective_from": kpi.effective_from.isoformat(),
        "effective_to": kpi.effective_to.isoformat(),
    }


def _described(kpi: Kpi) -> dict[str, str | WireEnum]:
    """What an audit event records of a KPI: values as exact strings, enums by proto name."""
    return {
        **_form_of(kpi),
        "kpi_type": kpi.kpi_type,
        "direction": kpi.direction,
        "observation_frequency": kpi.observation_frequency,
        "status": kpi.status,
        "rejection_reason": kpi.rejection_reason,
    }


def _save(
    session: Session,
    caller: Caller,
    loan: Loan,
    action: str,
    kpi: Kpi,
    changes: Changes,
    now: datetime,
) -> None:
    event = Event(action, "kpi", kpi.id, changes)
    save(session, LoanChange(caller, loan, ChangeKind.KPI_CHANGED, [event], now))
