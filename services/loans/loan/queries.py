"""GetLoan and ListLoans as prebuilt statements: the authorization filter in the query.

A read needs no unit of work, and loading a loan through an ORM Session cost
several times the row itself. These statements are built once (ListLoans: one
per shape of filter) and run on a pooled connection; rows come back with the
loan's columns as attributes, which is all the conversions read. Visibility is
the same as for writes: a loan of another organization is NOT_FOUND.

GetLoan and a page of ListLoans are read as keys first (id, version; a page
also create_time), since a loan's committed versions are converted to messages
once and kept (conversions.committed_loans_to_proto); only the loans not kept
are read in full, by id, with the same authorization filter. All but that last
read (a list of ids, an expanding parameter) run on the driver's cursor
(driver_statement.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal, NamedTuple, TypeVar

from sqlalchemy import (
    BindParameter,
    Connection,
    Select,
    and_,
    bindparam,
    or_,
    select,
    tuple_,
    union_all,
)

from services.loans.aggregate import is_uuid, require_party
from services.loans.models import Loan
from services.loans.vocabulary import LoanState
from services.shared.db import table_of
from services.shared.driver_statement import DriverStatement
from services.shared.errors import NotFoundError, ValidationError
from services.shared.identity import Caller, Role

__all__ = [
    "LoanRow",
    "LoanVersion",
    "find_loan",
    "find_loan_version",
    "loans_by_id",
    "page_of_loans",
]

# A loan's columns as attributes, as Loan has them: a Row, or DriverStatement's named tuple.
LoanRow = Any
T = TypeVar("T")
_LOANS: Final = table_of(Loan)
_C = _LOANS.c
_ORG: BindParameter[Any] = bindparam("org")
_VISIBLE: Final = (
    _C.id == bindparam("loan_id"),
    or_(_C.borrower_organization_id == _ORG, _C.lender_organization_id == _ORG),
)
_GET: Final = DriverStatement(select(_LOANS).where(*_VISIBLE))
_GET_VERSION: Final = DriverStatement(select(_C.id, _C.version).where(*_VISIBLE))
_BY_ID: Final = select(_LOANS).where(
    _C.id.in_(bindparam("ids", expanding=True)),
    or_(_C.borrower_organization_id == _ORG, _C.lender_organization_id == _ORG),
)
# What a page is read as: enough to order it, continue after it, and find kept messages.
_KEYS: Final = (_C.id, _C.version, _C.create_time)
Side = Literal["", "borrower", "lender"]


class LoanVersion(NamedTuple):
    """One committed version of a loan: what names its kept message."""

    id: str
    version: int


def find_loan_version(connection: Connection, *, caller: Caller, loan_id: str) -> LoanVersion:
    """The current version of a loan the caller's organization borrows or lends; any
    other is NOT_FOUND."""
    return LoanVersion(
        *_visible(caller, loan_id, lambda params: _GET_VERSION.first(connection, params))
    )


def find_loan(connection: Connection, *, caller: Caller, loan_id: str) -> LoanRow:
    """A loan the caller's organization borrows or lends, in full; any other is NOT_FOUND."""
    return _visible(caller, loan_id, lambda params: _GET.first(connection, params))


def _visible(caller: Caller, loan_id: str, read: Callable[[dict[str, str]], T | None]) -> T:
    """What read finds of a loan by id with the caller's organization on a side."""
    require_party(caller)
    if not loan_id:
        raise ValidationError([("loan_id", "LOAN_ID_REQUIRED", "is required")])
    row = None
    if is_uuid(loan_id):  # anything else names no loan
        row = read({"loan_id": loan_id, "org": caller.organization_id})
    if row is None:
        raise NotFoundError("no such loan", reason="LOAN_NOT_FOUND")
    return row


def page_of_loans(
    connection: Connection,
    *,
    caller: Caller,
    states: Sequence[LoanState],
    limit: int,
    after: tuple[Any, str] | None,
    counterparty: str = "",
) -> list[LoanRow]:
    """The keys (id, version, create_time) of up to limit loans of the caller's organization,
    newest first, after (time, id).

    With a counterparty, only loans with that organization on the other side.
    """
    require_party(caller)
    side: Side = ""
    if counterparty:
        # Organizations take one side by their role: borrowers borrow, lenders lend.
        side = "borrower" if caller.role is Role.BORROWER else "lender"
    params: dict[str, Any] = {"org": caller.organization_id, "counterparty": counterparty}
    params.update(zip(_state_names(len(states)), states, strict=True))
    if after is not None:
        params["after_time"], params["after_id"] = after
    statement = _list_statement(len(states), after is not None, side, limit)
    return statement.all(connection, params)


def loans_by_id(connection: Connection, *, caller: Caller, ids: Sequence[str]) -> list[LoanRow]:
    """The loans of those ids that the caller's organization borrows or lends, in full."""
    if not ids:
        return []
    return list(connection.execute(_BY_ID, {"ids": list(ids), "org": caller.organization_id}))


@functools.cache
def _list_statement(states: int, after: bool, side: Side, limit: int) -> DriverStatement:
    """The ListLoans statement of one shape of filter and page size, built once.

    The limit is part of the statement, not a parameter: SQLite renders a bound
    LIMIT anew on every execution. So is the number of states filtered on (one
    parameter each), which lets the statement run on the driver's cursor.

    Without a counterparty the caller's organization may be on either side;
    "borrower OR lender" would read every loan of the organization and sort
    them, so each side is read in its own index order, a page at most, and the
    two pages are merged.
    """
    filters = _filters(states, after)
    if side:
        return DriverStatement(_newest(select(*_KEYS).where(_party_to(side), *filters), limit))
    borrowed = _newest(select(*_KEYS).where(_C.borrower_organization_id == _ORG, *filters), limit)
    lent = _newest(
        select(*_KEYS).where(
            _C.lender_organization_id == _ORG, _C.borrower_organization_id != _ORG, *filters
        ),
        limit,
    )
    both = union_all(borrowed.subquery().select(), lent.subquery().select()).subquery()
    return DriverStatement(
        select(both).order_by(both.c.create_time.desc(), both.c.id.desc()).limit(limit)
    )


def _newest(statement: Select[Any], limit: int) -> Select[Any]:
    return statement.order_by(_C.create_time.desc(), _C.id.desc()).limit(limit)


def _state_names(count: int) -> list[str]:
    return [f"state_{i}" for i in range(count)]


def _filters(states: int, after: bool) -> list[Any]:
    filters: list[Any] = []
    if states:
        filters.append(
            _C.state.in_([bindparam(n, type_=_C.state.type) for n in _state_names(states)])
        )
    if after:
        after_time: BindParameter[Any] = bindparam("after_time", type_=_C.create_time.type)
        after_id: BindParameter[Any] = bindparam("after_id")
        filters.append(tuple_(_C.create_time, _C.id) < tuple_(after_time, after_id))
    return filters


def _party_to(side: Side) -> Any:
    """One side with one counterparty: organizations take one side by their role."""
    counterparty: BindParameter[Any] = bindparam("counterparty")
    if side == "borrower":
        return and_(_C.borrower_organization_id == _ORG, _C.lender_organization_id == counterparty)
    return and_(_C.lender_organization_id == _ORG, _C.borrower_organization_id == counterparty)
