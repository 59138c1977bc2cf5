"""What the KPI, ratchet and result use cases share: the parts of a loan aggregate.

A KPI, ratchet or result is reached through its loan: the loan is locked first
(every writer of the aggregate queues on that row), the caller must be a party
to it, and each change bumps the loan's version, writes one audit event per
changed resource and queues one change notification.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from services.loans.access import load_loan, require_party, touch
from services.loans.changes import record_change
from services.loans.models import Kpi, KpiResult, Loan, MarginRatchet, OutboxEvent
from services.loans.use_cases import LoanState
from services.shared.errors import (
    AbortedError,
    FailedPreconditionError,
    NotFoundError,
    ValidationError,
)
from services.shared.identity import Caller, Role
from services.shared.outbox import record_event

__all__ = [
    "Changes",
    "audit",
    "changed",
    "created",
    "deleted",
    "diff",
    "load_part",
    "require_active",
    "require_editable",
]

SOURCE = "loans"
_EDITABLE_STATES = frozenset({LoanState.DRAFT, LoanState.PENDING_APPROVAL})

Part = TypeVar("Part", Kpi, MarginRatchet, KpiResult)
# (field, old JSON value, new JSON value); "" where there is no old or new value.
Changes = list[tuple[str, str, str]]
Described = Mapping[str, str | int]


def load_part(
    session: Session,
    model: type[Part],
    part_id: str,
    *,
    caller: Caller,
    party: Role | None,
    field: str,
    what: str,
) -> tuple[Loan, Part]:
    """The locked loan and its part; NOT_FOUND unless the caller's organization is a party."""
    require_party(caller)
    if not part_id:
        raise ValidationError([(field, f"{field.upper()}_REQUIRED", "is required")])
    missing = NotFoundError(
        f"no such {what}", reason=f"{field.removesuffix('_id').upper()}_NOT_FOUND"
    )
    loan_id = session.scalar(select(model.loan_id).where(model.id == part_id))
    if loan_id is None:
        raise missing
    try:
        loan = load_loan(session, caller=caller, loan_id=loan_id, party=party, for_update=True)
    except NotFoundError:
        raise missing from None  # another organization's part is as absent as no part
    # Read only now: with the loan locked, no other writer can change the part under us.
    part = session.get(model, part_id)
    if part is None:
        raise missing
    return loan, part


def require_editable(loan: Loan) -> None:
    """KPIs and ratchets change only while the loan is DRAFT or PENDING_APPROVAL."""
    if loan.state not in _EDITABLE_STATES:
        raise FailedPreconditionError(
            f"KPIs and margin ratchets cannot change once the loan is {loan.state}",
            reason="LOAN_NOT_EDITABLE",
        )


def require_active(loan: Loan) -> None:
    """Results are reported and verified only while the loan is ACTIVE."""
    if loan.state != LoanState.ACTIVE:
        raise FailedPreconditionError(
            f"results are reported and verified only on ACTIVE loans, not {loan.state}",
            reason="LOAN_NOT_ACTIVE",
        )


def audit(
    session: Session,
    *,
    loan: Loan,
    caller: Caller,
    action: str,
    resource: tuple[str, str],
    changes: Changes,
    now: datetime,
) -> None:
    """Write the audit event of one changed resource (type, id) into the outbox."""
    resource_type, resource_id = resource
    record_event(
        session,
        OutboxEvent,
        source=SOURCE,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        actor=caller,
        organization_ids=[loan.borrower_organization_id, loan.lender_organization_id or ""],
        changes=changes,
        now=now,
    )


def changed(session: Session, loan: Loan, kind: str, now: datetime) -> None:
    """Give the loan a new version (so a new etag) and queue its change notification."""
    touch(loan, now)
    try:
        session.flush()
    except StaleDataError:
        # A row's version moved under us: another writer won; the client rereads and retries.
        raise AbortedError(
            "the loan changed concurrently; read it again and retry",
            reason="CONCURRENT_MODIFICATION",
        ) from None
    record_change(session, loan, kind, now)


def created(after: Described) -> Changes:
    """The changes of a new resource: every field from nothing to its value."""
    return [(name, "", json.dumps(value)) for name, value in after.items()]


def deleted(before: Described) -> Changes:
    """The changes of a deleted resource: every field from its value to nothing."""
    return [(name, json.dumps(value), "") for name, value in before.items()]


def diff(before: Described, after: Described) -> Changes:
    """The fields whose value changed, old and new."""
    return [
        (name, json.dumps(before[name]), json.dumps(value))
        for name, value in after.items()
        if before[name] != value
    ]
