"""KPI use cases: the borrower proposes and edits KPIs, the lender accepts or rejects them.

KPIs change only while the loan is DRAFT or PENDING_APPROVAL. Any edit sends an
accepted or rejected KPI back to PROPOSED, so the lender reviews what it will
be held to. Use cases take the caller's session and never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.loans.access import Party, check_etag, load_loan
from services.loans.changes import ChangeKind
from services.loans.kpi_fields import apply_mask, format_value, parse_reason
from services.loans.kpi_schemas import (
    DIRECTION_PREFIX,
    FREQUENCY_PREFIX,
    TYPE_PREFIX,
    NewKpi,
    parse_kpi,
)
from services.loans.models import Kpi, Loan, MarginRatchet
from services.loans.parts import (
    audit,
    changed,
    created,
    deleted,
    diff,
    load_part,
    require_editable,
)
from services.shared.errors import FailedPreconditionError
from services.shared.identity import Caller, Role

__all__ = [
    "KpiStatus",
    "accept_kpi",
    "create_kpi",
    "delete_kpi",
    "list_kpis",
    "load_kpi",
    "reject_kpi",
    "update_kpi",
]


class KpiStatus:
    """KPI statuses as stored; the proto enum is ``KPI_STATUS_`` + the name."""

    PROPOSED = "PROPOSED"
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"


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
    _audit(session, loan, caller, "KPI_CREATED", kpi, created(_described(kpi)), now)
    changed(session, loan, ChangeKind.KPI_CHANGED, now)
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
    new_kpi = parse_kpi(apply_mask(_form(kpi), form, paths))
    check_etag(kpi.etag, etag, what="KPI")
    require_editable(loan)
    now = datetime.now(UTC)
    before = _described(kpi)
    _assign(kpi, new_kpi)
    kpi.status, kpi.rejection_reason, kpi.update_time = KpiStatus.PROPOSED, "", now
    _audit(session, loan, caller, "KPI_UPDATED", kpi, diff(before, _described(kpi)), now)
    changed(session, loan, ChangeKind.KPI_CHANGED, now)
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
    _audit(session, loan, caller, "KPI_DELETED", kpi, changes, now)
    changed(session, loan, ChangeKind.KPI_CHANGED, now)
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


def _review(
    session: Session, caller: Caller, kpi_id: str, etag: str, status: str, raw_reason: str
) -> Kpi:
    loan, kpi = load_kpi(session, caller=caller, kpi_id=kpi_id, party=Party.LENDER)
    reason = parse_reason(raw_reason) if status == KpiStatus.REJECTED else ""
    check_etag(kpi.etag, etag, what="KPI")
    require_editable(loan)
    if kpi.status != KpiStatus.PROPOSED:
        raise FailedPreconditionError(
            f"the KPI was already reviewed ({kpi.status}); it is reviewed again once edited",
            reason="KPI_ALREADY_REVIEWED",
        )
    now = datetime.now(UTC)
    before = _described(kpi)
    kpi.status, kpi.rejection_reason, kpi.update_time = status, reason, now
    action = f"KPI_{status}"  # KPI_ACCEPTED, KPI_REJECTED
    _audit(session, loan, caller, action, kpi, diff(before, _described(kpi)), now)
    changed(session, loan, ChangeKind.KPI_CHANGED, now)
    return kpi


def _assign(kpi: Kpi, new_kpi: NewKpi) -> None:
    kpi.name = new_kpi.name
    kpi.kpi_type = new_kpi.kpi_type.value
    kpi.unit = new_kpi.unit
    kpi.direction = new_kpi.direction.value
    kpi.baseline_value = new_kpi.baseline_value
    kpi.target_value = new_kpi.target_value
    kpi.threshold_value = new_kpi.threshold_value
    kpi.observation_frequency = new_kpi.observation_frequency.value
    kpi.effective_from = new_kpi.effective_from
    kpi.effective_to = new_kpi.effective_to


def _form(kpi: Kpi) -> dict[str, str]:
    """The stored KPI as wire fields, so that an update validates the merged whole."""
    return {
        "name": kpi.name,
        "kpi_type": f"{TYPE_PREFIX}{kpi.kpi_type}",
        "unit": kpi.unit,
        "direction": f"{DIRECTION_PREFIX}{kpi.direction}",
        "baseline_value": format_value(kpi.baseline_value),
        "target_value": format_value(kpi.target_value),
        "threshold_value": "" if kpi.threshold_value is None else format_value(kpi.threshold_value),
        "observation_frequency": f"{FREQUENCY_PREFIX}{kpi.observation_frequency}",
        "effective_from": kpi.effective_from.isoformat(),
        "effective_to": kpi.effective_to.isoformat(),
    }


def _described(kpi: Kpi) -> dict[str, str | int]:
    """What an audit event records of a KPI: its stored fields, values as exact strings."""
    form = _form(kpi)
    return {
        **form,
        "kpi_type": kpi.kpi_type,
        "direction": kpi.direction,
        "observation_frequency": kpi.observation_frequency,
        "status": kpi.status,
        "rejection_reason": kpi.rejection_reason,
    }


def _audit(
    session: Session,
    loan: Loan,
    caller: Caller,
    action: str,
    kpi: Kpi,
    changes: list[tuple[str, str, str]],
    now: datetime,
) -> None:
    audit(
        session,
        loan=loan,
        caller=caller,
        action=action,
        resource=("kpi", kpi.id),
        changes=changes,
        now=now,
    )
