"""Between the wire (loan_service.proto) and the loans domain."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Final, Protocol

from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.loan.schemas import format_amount
from services.loans.models import etag_of
from services.loans.vocabulary import InterestPeriod, LoanState, LoanType, ReferenceRate
from services.loans.wire import enum_name
from services.shared.caches import ExpiringCache
from services.shared.timestamps import timestamp

__all__ = [
    "LoanKey",
    "LoanLike",
    "committed_loan_to_proto",
    "committed_loans_to_proto",
    "deletion_to_proto",
    "kept_loan",
    "loan_form",
    "loan_to_proto",
    "states_of",
]


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
        **_facility_form(request),
    }


def _facility_form(request: pb.CreateLoanRequest | pb.UpdateLoanRequest) -> dict[str, str]:
    """The facility terms as the form takes them: digits, enums by name, "" when left out."""
    cap, floor = request.adjustment_cap_bps, request.adjustment_floor_bps
    return {
        "base_margin_bps": str(request.base_margin_bps),
        "reference_rate": enum_name(pb.ReferenceRate, request.reference_rate),
        "interest_period": enum_name(pb.InterestPeriod, request.interest_period),
        "adjustment_cap_bps": str(cap) if request.HasField("adjustment_cap_bps") else "",
        "adjustment_floor_bps": str(floor) if request.HasField("adjustment_floor_bps") else "",
        "reporting_grace_days": (
            str(request.reporting_grace_days) if request.HasField("reporting_grace_days") else ""
        ),
    }


def states_of(states: Iterable[pb.LoanState.ValueType]) -> list[LoanState]:
    """The states a filter names, once each, in order; unknown numbers match nothing."""
    prefix = LoanState.prefix()
    named = {enum_name(pb.LoanState, s).removeprefix(prefix) for s in states}
    return sorted(LoanState(name) for name in named if name in LoanState.__members__)


def deletion_to_proto(loan_id: str, delete_time: datetime) -> pb.LoanDeletion:
    return pb.LoanDeletion(loan_id=loan_id, delete_time=timestamp(delete_time))


class LoanKey(Protocol):
    """What names one committed version of a loan."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> int: ...


class LoanLike(Protocol):
    """A loan's stored columns: a Loan, or a row of the loans table read with Core."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def loan_type(self) -> LoanType: ...
    @property
    def state(self) -> LoanState: ...
    @property
    def version(self) -> int: ...
    @property
    def currency_code(self) -> str: ...
    @property
    def principal_amount(self) -> Decimal: ...
    @property
    def committed_amount(self) -> Decimal: ...
    @property
    def drawn_amount(self) -> Decimal: ...
    @property
    def start_date(self) -> date: ...
    @property
    def maturity_date(self) -> date: ...
    @property
    def borrower_organization_id(self) -> str: ...
    @property
    def lender_organization_id(self) -> str | None: ...
    @property
    def creator_user_id(self) -> str: ...
    @property
    def create_time(self) -> datetime: ...
    @property
    def update_time(self) -> datetime: ...
    @property
    def base_margin_bps(self) -> int: ...
    @property
    def reference_rate(self) -> ReferenceRate: ...
    @property
    def interest_period(self) -> InterestPeriod: ...
    @property
    def adjustment_cap_bps(self) -> int: ...
    @property
    def adjustment_floor_bps(self) -> int: ...
    @property
    def repaid_amount(self) -> Decimal: ...
    @property
    def reporting_grace_days(self) -> int: ...


# Looked up once: the proto enum number of each stored value.
_LOAN_TYPES: Final = {member: pb.LoanType.Value(member.wire) for member in LoanType}
_LOAN_STATES: Final = {member: pb.LoanState.Value(member.wire) for member in LoanState}
_RATES: Final = {member: pb.ReferenceRate.Value(member.wire) for member in ReferenceRate}
_PERIODS: Final = {member: pb.InterestPeriod.Value(member.wire) for member in InterestPeriod}


# Committed versions of loans as messages. A loan's version moves with every committed
# write (its etag is made from it), so (id, version) names one content for good.
_COMMITTED: Final[ExpiringCache[tuple[str, int], pb.Loan]] = ExpiringCache(10_000)


def committed_loan_to_proto(loan: LoanLike) -> pb.Loan:
    """loan_to_proto for a row read from committed data, converted once per version.

    Only reads may use it: inside a write, a version is not committed yet and a
    rolled-back write's version comes again with other content. The message is
    shared: callers copy it into their response and never change it.
    """
    key = (loan.id, loan.version)
    message = _COMMITTED.get(key)
    if message is None:
        message = loan_to_proto(loan)
        _COMMITTED.put(key, message, expires_at=math.inf)
    return message


def kept_loan(key: LoanKey) -> pb.Loan | None:
    """The message of a committed version, if a read converted it before (and it is kept)."""
    return _COMMITTED.get((key.id, key.version))


def committed_loans_to_proto(
    keys: Sequence[LoanKey], read: Callable[[list[str]], Iterable[LoanLike]]
) -> list[pb.Loan]:
    """The messages of a page of committed loans, in the keys' order: those kept, and the
    others read in full by ``read`` (ids in, rows out) and kept.

    A loan that ``read`` no longer finds (it changed hands since the keys were read) is
    left out; one that it finds at a newer version is given as it is now.
    """
    found = {key.id: kept_loan(key) for key in keys}
    if missing := [loan_id for loan_id, message in found.items() if message is None]:
        for row in read(missing):
            found[row.id] = committed_loan_to_proto(row)
    return [message for key in keys if (message := found[key.id]) is not None]


def loan_to_proto(loan: LoanLike) -> pb.Loan:
    currency = loan.currency_code
    return pb.Loan(
        id=loan.id,
        name=loan.name,
        loan_type=_LOAN_TYPES[loan.loan_type],
        state=_LOAN_STATES[loan.state],
        etag=etag_of("loan", loan.id, loan.version),
        currency_code=currency,
        principal_amount=format_amount(loan.principal_amount, currency),
        committed_amount=format_amount(loan.committed_amount, currency),
        drawn_amount=format_amount(loan.drawn_amount, currency),
        start_date=loan.start_date.isoformat(),
        maturity_date=loan.maturity_date.isoformat(),
        borrower_organization_id=loan.borrower_organization_id,
        lender_organization_id=loan.lender_organization_id or "",
        creator_user_id=loan.creator_user_id,
        create_time=timestamp(loan.create_time),
        update_time=timestamp(loan.update_time),
        base_margin_bps=loan.base_margin_bps,
        reference_rate=_RATES[loan.reference_rate],
        interest_period=_PERIODS[loan.interest_period],
        adjustment_cap_bps=loan.adjustment_cap_bps,
        adjustment_floor_bps=loan.adjustment_floor_bps,
        outstanding_amount=format_amount(loan.drawn_amount - loan.repaid_amount, currency),
        reporting_grace_days=loan.reporting_grace_days,
    )
