"""The borrower's terms of a DRAFT loan: update, delete, invite a lender.

Use cases take the session of the caller's transaction and never commit; each
change goes through the aggregate's one write path (aggregate.save).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.loans.aggregate import (
    Event,
    LoanChange,
    Party,
    check_etag,
    deleted,
    diff,
    load_loan,
    save,
)
from services.loans.calendar.terms import REPORTING_FIELDS
from services.loans.facility.terms import FACILITY_FIELDS
from services.loans.kpis.use_cases import reopen_reviews
from services.loans.loan.schemas import parse_new_loan
from services.loans.loan.use_cases import described, form_of
from services.loans.models import Kpi, Loan
from services.loans.vocabulary import ChangeKind, LoanState
from services.shared.errors import FailedPreconditionError, FieldViolation, ValidationError
from services.shared.identity import Caller, Role
from services.shared.validation import apply_mask

if TYPE_CHECKING:  # a plain value at run time; use cases import nothing that speaks gRPC
    from services.shared.auth_client import DirectoryUser

__all__ = [
    "UPDATABLE_FIELDS",
    "delete_loan",
    "invite_lender",
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
    *FACILITY_FIELDS,
    *REPORTING_FIELDS,
)
_DRAFT_ONLY: Final = frozenset({LoanState.DRAFT})


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
    merged = parse_new_loan(**apply_mask(form_of(loan), values, paths))
    check_etag(loan.etag, etag)
    _require_draft(loan)
    before = described(loan)
    for path in UPDATABLE_FIELDS:
        setattr(loan, path, getattr(merged, path))
    changes = diff(before, described(loan))
    if changes:  # the same values again change nothing, so nothing is written or audited
        event = Event("LOAN_UPDATED", "loan", loan.id, changes)
        now = datetime.now(UTC)
        save(session, LoanChange(caller, loan, ChangeKind.UPDATED, [event], now))
    return loan


def delete_loan(session: Session, *, caller: Caller, loan_id: str, etag: str) -> datetime:
    """Delete a DRAFT loan; its KPIs, ratchets, results and history go with it (CASCADE)."""
    loan = load_loan(session, caller=caller, loan_id=loan_id, party=Party.BORROWER, for_update=True)
    check_etag(loan.etag, etag)
    _require_draft(loan)
    now = datetime.now(UTC)
    event = Event("LOAN_DELETED", "loan", loan.id, deleted(described(loan)))
    save(session, LoanChange(caller, loan, ChangeKind.DELETED, [event], now))
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
    invited, previous = _lender_organization(lender), loan.lender_organization_id
    if previous == invited:
        return loan  # invited already: nothing changes
    loan.lender_organization_id = invited
    field = "lender_organization_id"
    event = Event("LENDER_INVITED", "loan", loan.id, diff({field: previous}, {field: invited}))
    now = datetime.now(UTC)
    # The new lender reviews every KPI itself: another lender's verdicts bind no one.
    kpis = session.scalars(select(Kpi).where(Kpi.loan_id == loan.id).order_by(Kpi.create_time))
    events = [event, *reopen_reviews(list(kpis), cause="LENDER_CHANGED", now=now)]
    # The replaced lender hears of the change that removes it, in the audit log and on its watch.
    save(session, LoanChange(caller, loan, ChangeKind.LENDER_INVITED, events, now, previous))
    return loan


def _lender_organization(lender: DirectoryUser | None) -> str:
    """The organization of the invited lender; unknown and not-a-lender answer alike."""
    if lender is None or lender.role is not Role.LENDER:
        # The reply reveals no more than that no lender has this email.
        raise FailedPreconditionError(
            "no lender has this email",
            reason="LENDER_NOT_FOUND",
            field_violations=(FieldViolation("lender_email", "no lender has this email"),),
        )
    return lender.organization_id


def _require_draft(loan: Loan) -> None:
    loan.require_state(_DRAFT_ONLY, reason="LOAN_NOT_DRAFT")
