"""Steps 3 and 5 of every loan call: is the loan visible, may this caller act, is the etag fresh.

A loan outside the caller's organization answers NOT_FOUND (its existence is
never revealed); a visible loan with the wrong role answers PERMISSION_DENIED.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.loans.models import Loan
from services.shared.errors import (
    AbortedError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from services.shared.identity import Caller, Role

__all__ = ["Party", "check_etag", "load_loan", "require_party", "touch"]


class Party:
    """Which side of a loan may perform an action."""

    BORROWER = Role.BORROWER
    LENDER = Role.LENDER
    EITHER = None


def require_party(caller: Caller) -> None:
    """Admins run the platform and read audit logs; they hold no loan rights."""
    if caller.role not in (Role.BORROWER, Role.LENDER):
        raise PermissionDeniedError(
            "only borrowers and lenders act on loans", reason="ROLE_NOT_ALLOWED"
        )


def load_loan(
    session: Session,
    *,
    caller: Caller,
    loan_id: str,
    party: Role | None,
    for_update: bool = False,
    field: str = "loan_id",
) -> Loan:
    """The loan if the caller's organization is a party to it, acting as `party` (None: either)."""
    require_party(caller)
    if not loan_id:
        raise ValidationError([(field, "LOAN_ID_REQUIRED", "is required")])
    loan = _visible(session, caller, loan_id, for_update=for_update)
    if party is not None and _side(caller, loan) is not party:
        side = "borrower" if party is Role.BORROWER else "lender"
        raise PermissionDeniedError(
            f"only the loan's {side} may do this", reason=f"NOT_THE_{side.upper()}"
        )
    return loan


def check_etag(current: str, given: str, *, what: str = "loan") -> None:
    """An etag the client sent must be the current one (optimistic concurrency)."""
    if given and given != current:
        raise AbortedError(
            f"the {what} changed since you read it; read it again and retry",
            reason="ETAG_MISMATCH",
        )


def touch(loan: Loan, now: datetime) -> None:
    """Record that the loan aggregate changed: a new version, so a new etag."""
    loan.update_time = now  # the ORM bumps `version` on flush (version_id_col)


def _visible(session: Session, caller: Caller, loan_id: str, *, for_update: bool) -> Loan:
    loan = None
    if _is_uuid(loan_id):
        query = select(Loan).where(Loan.id == loan_id)
        if for_update:  # PostgreSQL: concurrent writers of one loan queue here
            query = query.with_for_update()
        loan = session.scalar(query)
    org = caller.organization_id
    if loan is None or org not in (loan.borrower_organization_id, loan.lender_organization_id):
        raise NotFoundError("no such loan", reason="LOAN_NOT_FOUND")
    return loan


def _side(caller: Caller, loan: Loan) -> Role | None:
    if caller.role is Role.BORROWER and caller.organization_id == loan.borrower_organization_id:
        return Role.BORROWER
    if caller.role is Role.LENDER and caller.organization_id == loan.lender_organization_id:
        return Role.LENDER
    return None


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
