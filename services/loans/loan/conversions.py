"""Between the wire (loan_service.proto) and the loans domain."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.loan.schemas import format_amount
from services.loans.models import Loan
from services.loans.vocabulary import LoanState
from services.loans.wire import enum_name
from services.shared.timestamps import timestamp

__all__ = ["deletion_to_proto", "loan_form", "loan_to_proto", "states_of"]


def loan_form(request: pb.CreateLoanRequest | pb.UpdateLoanRequest) -> dict[str, str]:
    """A loan's term fields as the form schema takes them: strings, the type by enum name."""
    return {
        "name": request.name,
        "loan_type": enum_name(pb.LoanType, request.loan_type),
        "currency_code": request.currency_code,
        "principal_amount": request.principal_amount,
        "committed_amount": request.committed_amount,
        "drawn_amount": request.drawn_amount,
        "start_date": request.start_date,
        "maturity_date": request.maturity_date,
    }


def states_of(states: Iterable[pb.LoanState.ValueType]) -> list[LoanState]:
    """The states a filter names, once each, in order; unknown numbers match nothing."""
    prefix = LoanState.prefix()
    named = {
        pb.LoanState.Name(s).removeprefix(prefix) for s in states if s in pb.LoanState.values()
    }
    return sorted(LoanState(name) for name in named if name in LoanState.__members__)


def deletion_to_proto(loan_id: str, delete_time: datetime) -> pb.LoanDeletion:
    return pb.LoanDeletion(loan_id=loan_id, delete_time=timestamp(delete_time))


def loan_to_proto(loan: Loan) -> pb.Loan:
    return pb.Loan(
        id=loan.id,
        name=loan.name,
        loan_type=pb.LoanType.Value(loan.loan_type.wire),
        state=pb.LoanState.Value(loan.state.wire),
        etag=loan.etag,
        currency_code=loan.currency_code,
        principal_amount=format_amount(loan.principal_amount, loan.currency_code),
        committed_amount=format_amount(loan.committed_amount, loan.currency_code),
        drawn_amount=format_amount(loan.drawn_amount, loan.currency_code),
        start_date=loan.start_date.isoformat(),
        maturity_date=loan.maturity_date.isoformat(),
        borrower_organization_id=loan.borrower_organization_id,
        lender_organization_id=loan.lender_organization_id or "",
        creator_user_id=loan.creator_user_id,
        create_time=timestamp(loan.create_time),
        update_time=timestamp(loan.update_time),
    )
