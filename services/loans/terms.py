"""The borrower's terms of a DRAFT loan: update, delete, invite a lender.

Use cases take the session of the caller's transaction and never commit. Each
change bumps the loan's version (a new etag), writes its past-tense audit event
to the outbox and queues a change notification, all in that one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from services.loans.access import Party, check_etag, load_loan, touch
from services.loans.changes import ChangeKind, record_change
from services.loans.models import Loan, OutboxEvent
from services.loans.schemas import LoanType, NewLoan, format_amount, parse_new_loan
from services.loans.use_cases import SOURCE, LoanState
from services.shared.errors import (
    AbortedError,
    FailedPreconditionError,
    FieldViolation,
    ValidationError,
)
from services.shared.identity import Caller, Role
from services.shared.outbox import record_event

if TYPE_CHECKING:  # a plain value at run time; use cases import nothing that speaks gRPC
    from services.shared.auth_client import DirectoryUser

__all__ = [
    "UPDATABLE_FIELDS",
    "delete_loan",
    "invite_lender",
    "loan_form",
    "save_change",
    "update_loan",
]

# The update_mask paths UpdateLoan accepts, in the order CreateLoan validates them.
UPDATABLE_FIELDS: Final = (
    "name",
    "loan_type",
    "currency_code",
    "principal_amount",
    "committed_amount",
    "drawn_amount",
    "start_date",
    "maturity_date",
)

Change = tuple[str, str, str]  # (field, old JSON value, new JSON value)


def loan_form(loan: Loan) -> dict[str, str]:
    """The loan's terms as the CreateLoan form carries them: strings, the type by enum name."""

    def amount(value: Decimal) -> str:
        return format_amount(value, loan.currency_code)

    return {
        "name": loan.name,
        "loan_type": f"LOAN_TYPE_{loan.loan_type}",
        "currency_code": loan.currency_code,
        "principal_amount": amount(loan.principal_amount),
        "committed_amount": amount(loan.committed_amount),
        "drawn_amount": amount(loan.drawn_amount),
        "start_date": loan.start_date.isoformat(),
        "maturity_date": loan.maturity_date.isoformat(),
    }


def update_loan(
    session: Session,
    *,
    caller: Caller,
    loan_id: str,
    etag: str,
    paths: Sequence[str],
    values: Mapping[str, str],
) -> Loan:
    """Change the masked terms of a DRAFT loan; the merged loan must pass CreateLoan's rules."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.BORROWER, for_update=True)
    _check_mask(paths)
    before = loan_form(loan)
    merged = parse_new_loan(**{**before, **{path: values[path] for path in paths}})
    check_etag(loan.etag, etag)
    _require_draft(loan)
    changes = _apply_terms(loan, merged, paths, before)
    if changes:  # the same values again change nothing, so nothing is written or audited
        save_change(session, caller=caller, loan=loan, action="LOAN_UPDATED", changes=changes)
    return loan


def delete_loan(session: Session, *, caller: Caller, loan_id: str, etag: str) -> datetime:
    """Delete a DRAFT loan; its KPIs, ratchets, results and history go with it (CASCADE)."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.BORROWER, for_update=True)
    check_etag(loan.etag, etag)
    _require_draft(loan)
    now = datetime.now(UTC)
    gone = [("state", loan.state), *loan_form(loan).items()]
    changes = [(field, json.dumps(value), "") for field, value in gone]
    _audit(session, caller, loan, "LOAN_DELETED", changes, now)
    # Recorded while the loan still exists: the notification needs its organizations.
    record_change(session, loan, ChangeKind.DELETED, now)
    session.delete(loan)
    _flush(session)
    return now


def invite_lender(
    session: Session,
    *,
    caller: Caller,
    loan_id: str,
    etag: str,
    email: str,
    lender: DirectoryUser | None,
) -> Loan:
    """Make the organization of the active lender with this email the DRAFT loan's lender."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.BORROWER, for_update=True)
    if not email.strip():
        raise ValidationError([("lender_email", "LENDER_EMAIL_REQUIRED", "is required")])
    check_etag(loan.etag, etag)
    _require_draft(loan)
    if lender is None or lender.role is not Role.LENDER:
        # Unknown and not-a-lender answer alike: the reply reveals no more than that.
        raise FailedPreconditionError(
            "no lender has this email",
            reason="LENDER_NOT_FOUND",
            field_violations=(FieldViolation("lender_email", "no lender has this email"),),
        )
    return _set_lender(session, caller, loan, lender.organization_id)


def save_change(
    session: Session,
    *,
    caller: Caller,
    loan: Loan,
    action: str,
    changes: list[Change],
    kind: str = ChangeKind.UPDATED,
    also_audited_for: str | None = None,
    now: datetime | None = None,
) -> None:
    """Bump the loan's version, audit the change and queue its notification.

    ``also_audited_for`` names one more organization that sees the event, e.g. a
    lender the change replaced.
    """
    now = now or datetime.now(UTC)
    touch(loan, now)
    _flush(session)
    _audit(session, caller, loan, action, changes, now, also_audited_for)
    record_change(session, loan, kind, now)


def _set_lender(session: Session, caller: Caller, loan: Loan, organization_id: str) -> Loan:
    previous = loan.lender_organization_id
    if previous == organization_id:
        return loan  # invited already: nothing changes
    loan.lender_organization_id = organization_id
    old = json.dumps(previous) if previous else ""
    save_change(
        session,
        caller=caller,
        loan=loan,
        action="LENDER_INVITED",
        changes=[("lender_organization_id", old, json.dumps(organization_id))],
        kind=ChangeKind.LENDER_INVITED,
        also_audited_for=previous,
    )
    return loan


def _check_mask(paths: Sequence[str]) -> None:
    if not paths:
        raise ValidationError([("update_mask", "UPDATE_MASK_REQUIRED", "must name a field")])
    unknown = sorted({p for p in paths if p not in UPDATABLE_FIELDS})
    if unknown:
        allowed = ", ".join(UPDATABLE_FIELDS)
        raise ValidationError(
            [("update_mask", "UPDATE_MASK_INVALID", f"may name only {allowed}; not {unknown}")]
        )


def _apply_terms(
    loan: Loan, merged: NewLoan, paths: Sequence[str], before: Mapping[str, str]
) -> list[Change]:
    """Set the masked fields to their validated values; the (field, old, new) that changed."""
    for path in dict.fromkeys(paths):  # a path named twice is applied once
        value = getattr(merged, path)
        setattr(loan, path, value.value if isinstance(value, LoanType) else value)
    after = loan_form(loan)
    return [
        (f, json.dumps(before[f]), json.dumps(after[f]))
        for f in UPDATABLE_FIELDS
        if before[f] != after[f]
    ]


def _require_draft(loan: Loan) -> None:
    if loan.state != LoanState.DRAFT:
        raise FailedPreconditionError(
            f"only a DRAFT loan may be changed; this one is {loan.state}", reason="LOAN_NOT_DRAFT"
        )


def _flush(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError:  # the version moved under us: another writer won
        raise AbortedError(
            "the loan changed since it was read; read it again and retry", reason="ETAG_MISMATCH"
        ) from None


def _audit(
    session: Session,
    caller: Caller,
    loan: Loan,
    action: str,
    changes: list[Change],
    now: datetime,
    also_audited_for: str | None = None,
) -> None:
    record_event(
        session,
        OutboxEvent,
        source=SOURCE,
        action=action,
        resource_type="loan",
        resource_id=loan.id,
        actor=caller,
        organization_ids=[
            loan.borrower_organization_id,
            loan.lender_organization_id or "",
            also_audited_for or "",
        ],
        changes=changes,
        now=now,
    )
