"""Between the wire (loan_service.proto) and the loans domain."""

from __future__ import annotations

from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.models import Loan
from services.loans.schemas import format_amount
from services.shared.timestamps import timestamp

__all__ = ["loan_form", "loan_to_proto", "state_names"]

_LOAN_STATE_PREFIX = "LOAN_STATE_"


def loan_form(request: pb.CreateLoanRequest | pb.UpdateLoanRequest) -> dict[str, str]:
    """A loan's term fields as the form schema takes them: strings, the type by enum name."""
    return {
        "name": request.name,
        # An unknown enum number has no name; the schema reports it as invalid.
        "loan_type": pb.LoanType.Name(request.loan_type)
        if request.loan_type in pb.LoanType.values()
        else str(request.loan_type),
        "currency_code": request.currency_code,
        "principal_amount": request.principal_amount,
        "committed_amount": request.committed_amount,
        "drawn_amount": request.drawn_amount,
        "start_date": request.start_date,
        "maturity_date": request.maturity_date,
    }


def state_names(states: list[pb.LoanState.ValueType]) -> list[str]:
    """Stored state names of a filter; unknown numbers match nothing."""
    return [
        pb.LoanState.Name(s).removeprefix(_LOAN_STATE_PREFIX)
        for s in states
        if s in pb.LoanState.values()
    ]


def loan_to_proto(loan: Loan) -> pb.Loan:
    return pb.Loan(
        id=loan.id,
        name=loan.name,
        loan_type=pb.LoanType.Value(f"LOAN_TYPE_{loan.loan_type}"),
        state=pb.LoanState.Value(f"{_LOAN_STATE_PREFIX}{loan.state}"),
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
