"""Creating, reading and listing loans: who may, and what each shows.

Use cases take the session of the caller's transaction and never commit; the
RPC layer owns the transaction. They know nothing of gRPC or protobuf.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from sqlalchemy import insert
from sqlalchemy.orm import Session

from services.loans.aggregate import Event, LoanChange, Party, announce, created, load_loan
from services.loans.calendar.terms import reporting_form
from services.loans.facility.terms import facility_described, facility_form
from services.loans.loan.schemas import NewLoan, format_amount
from services.loans.models import Loan
from services.loans.vocabulary import ChangeKind, LoanState, WireEnum
from services.shared.db import table_of
from services.shared.driver_statement import DriverStatement
from services.shared.errors import PermissionDeniedError
from services.shared.identity import Caller, Role

__all__ = [
    "authorize_loan_creation",
    "create_loan",
    "described",
    "form_of",
    "get_loan",
]


_INSERT_LOAN: Final = DriverStatement(insert(table_of(Loan)))  # every column, given


def authorize_loan_creation(caller: Caller) -> None:
    """Only a borrower creates loans, and only for their own organization."""
    if caller.role is not Role.BORROWER:
        raise PermissionDeniedError("only borrowers create loans", reason="ROLE_NOT_ALLOWED")


def create_loan(session: Session, *, caller: Caller, new_loan: NewLoan) -> Loan:
    """Add a DRAFT loan of the caller's organization and its LOAN_CREATED event."""
    authorize_loan_creation(caller)
    now = datetime.now(UTC)
    values = {
        "id": str(uuid.uuid4()),
        "name": new_loan.name,
        "loan_type": new_loan.loan_type,
        "state": LoanState.DRAFT,
        "currency_code": new_loan.currency_code,
        "principal_amount": new_loan.principal_amount,
        "committed_amount": new_loan.committed_amount,
        "drawn_amount": new_loan.drawn_amount,
        "start_date": new_loan.start_date,
        "maturity_date": new_loan.maturity_date,
        "borrower_organization_id": caller.organization_id,
        "lender_organization_id": None,
        "creator_user_id": caller.user_id,
        "version": 1,
        "create_time": now,
        "update_time": now,
        "base_margin_bps": new_loan.base_margin_bps,
        "reference_rate": new_loan.reference_rate,
        "interest_period": new_loan.interest_period,
        "adjustment_cap_bps": new_loan.adjustment_cap_bps,
        "adjustment_floor_bps": new_loan.adjustment_floor_bps,
        "repaid_amount": Decimal(0),
        "reporting_grace_days": new_loan.reporting_grace_days,
    }
    # A plain INSERT, built once: the unit of work would cost several times more for one row.
    _INSERT_LOAN.send(session.connection(), values)
    loan = Loan(**values)
    event = Event("LOAN_CREATED", "loan", loan.id, created(described(loan)))
    announce(session, LoanChange(caller, loan, ChangeKind.CREATED, [event], now))
    return loan


def get_loan(session: Session, *, caller: Caller, loan_id: str) -> Loan:
    """A loan the caller's organization borrows or lends; any other is NOT_FOUND."""
    return load_loan(session, caller=caller, loan_id=loan_id, party=Party.EITHER)


def form_of(loan: Loan) -> dict[str, str]:
    """The stored terms as the wire carries them, so that an update validates the merged whole."""

    def amount(value: Decimal) -> str:
        return format_amount(value, loan.currency_code)

    return {
        "name": loan.name,
        "loan_type": loan.loan_type.wire,
        "currency_code": loan.currency_code,
        "principal_amount": amount(loan.principal_amount),
        "committed_amount": amount(loan.committed_amount),
        "drawn_amount": amount(loan.drawn_amount),
        "start_date": loan.start_date.isoformat(),
        "maturity_date": loan.maturity_date.isoformat(),
        **facility_form(loan),
        **reporting_form(loan),
    }


def described(loan: Loan) -> dict[str, str | int | WireEnum]:
    """What audit events record of a loan: its terms, and its type and state as enums."""
    terms: dict[str, str | int | WireEnum] = dict(form_of(loan))
    del terms["name"], terms["loan_type"]
    # In the order events have always listed them: name, type and state first.
    return {
        "name": loan.name,
        "loan_type": loan.loan_type,
        "state": loan.state,
        **terms,
        **facility_described(loan),
        "reporting_grace_days": loan.reporting_grace_days,
    }
