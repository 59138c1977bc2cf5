"""The one write path of the loan aggregate: steps 3, 5, 6 and 7 of every change.

A loan and its KPIs, ratchets and results form one aggregate, reached through
the loan. Every writer locks the loan first (``load_loan``/``load_part``), so
writers of one loan queue on its row; a loan outside the caller's organization
answers NOT_FOUND (never revealed), a visible loan with the wrong role
PERMISSION_DENIED.

Every change then goes through ``save``: a new loan version (so a new etag;
a lost race is always ABORTED / ETAG_MISMATCH), one audit event per changed
resource written to the outbox, and one change notification, all in the
caller's transaction. Every organization an event names also hears the
notification, including a lender the change replaced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from services.loans.models import Drawdown, Kpi, KpiResult, Loan, MarginRatchet, OutboxEvent
from services.loans.vocabulary import ChangeKind, WireEnum
from services.loans.watching.changes import record_change
from services.shared._types import Change
from services.shared.errors import (
    AbortedError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from services.shared.identity import Caller, Role
from services.shared.outbox import record_event
from services.shared.validation import is_uuid

__all__ = [
    "SOURCE",
    "Changes",
    "Event",
    "LoanChange",
    "Party",
    "announce",
    "check_etag",
    "created",
    "deleted",
    "diff",
    "is_uuid",
    "load_loan",
    "load_part",
    "require_party",
    "save",
]

SOURCE: Final = "loans"

Part = TypeVar("Part", Kpi, MarginRatchet, KpiResult, Drawdown)
Changes = list[Change]
# What an audit event records of a resource: field → value (enums by their proto names).
Described = Mapping[str, str | int | WireEnum | None]


class Party:
    """Which side of a loan may perform an action."""

    BORROWER = Role.BORROWER
    LENDER = Role.LENDER
    EITHER = None


@dataclass(frozen=True)
class LoanChange:
    """One write to a loan aggregate: who, what kind, its audit events, and when."""

    caller: Caller
    loan: Loan
    kind: ChangeKind
    events: Sequence[Event]
    now: datetime
    also_for: str | None = None  # one more organization that hears of it: a replaced lender


@dataclass(frozen=True)
class Event:
    """One audit event of a change: the past-tense action and the resource it changed."""

    action: str
    resource_type: str
    resource_id: str
    changes: Changes


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
) -> Loan:
    """The loan if the caller's organization is a party to it, acting as `party` (None: either)."""
    require_party(caller)
    if not loan_id:
        raise ValidationError([("loan_id", "LOAN_ID_REQUIRED", "is required")])
    loan = _visible(session, caller, loan_id, for_update=for_update)
    if party is not None and loan.side_of(caller) is not party:
        side = "borrower" if party is Role.BORROWER else "lender"
        raise PermissionDeniedError(
            f"only the loan's {side} may do this", reason=f"NOT_THE_{side.upper()}"
        )
    return loan


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
    # Every id is a UUID; anything else names no part (and PostgreSQL refuses a NUL in it).
    loan_id = None
    if is_uuid(part_id):
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


def check_etag(current: str, given: str, *, what: str = "loan") -> None:
    """An etag the client sent must be the current one (optimistic concurrency)."""
    if given and given != current:
        raise AbortedError(
            f"the {what} changed since you read it; read it again and retry",
            reason="ETAG_MISMATCH",
        )


def save(session: Session, change: LoanChange) -> None:
    """Write a change to the loan aggregate: new version, audit events, change notification.

    A DELETED change removes the loan after recording it.
    """
    loan = change.loan
    if change.kind is not ChangeKind.DELETED:
        loan.update_time = change.now  # the ORM bumps `version` on flush (version_id_col)
    _flush(session)
    announce(session, change)
    if change.kind is ChangeKind.DELETED:
        session.delete(loan)
        _flush(session)


def announce(session: Session, change: LoanChange) -> None:
    """Steps 6 and 7: the audit events and the change notification, to the same organizations."""
    loan = change.loan
    organizations = _organizations(*loan.parties(), change.also_for)
    for event in change.events:
        record_event(
            session,
            OutboxEvent,
            source=SOURCE,
            action=event.action,
            resource_type=event.resource_type,
            resource_id=event.resource_id,
            actor=change.caller,
            organization_ids=list(organizations),
            changes=event.changes,
            now=change.now,
        )
    etag = "" if change.kind is ChangeKind.DELETED else loan.etag
    record_change(session, loan.id, change.kind, etag, organizations, change.now)


def created(after: Described) -> Changes:
    """The changes of a new resource: every field from nothing to its value."""
    return [Change(name, "", _json(value)) for name, value in after.items()]


def deleted(before: Described) -> Changes:
    """The changes of a deleted resource: every field from its value to nothing."""
    return [Change(name, _json(value), "") for name, value in before.items()]


def diff(before: Described, after: Described) -> Changes:
    """The fields whose value changed, old and new."""
    return [
        Change(name, _json(before[name]), _json(value))
        for name, value in after.items()
        if before[name] != value
    ]


def _json(value: str | int | WireEnum | None) -> str:
    """A value as audit payloads carry it: JSON, enums by proto name, "" for no value."""
    if value is None:
        return ""
    return json.dumps(value.wire if isinstance(value, WireEnum) else value)


def _organizations(*organization_ids: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(o for o in organization_ids if o))


def _flush(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError:  # a version moved under us: another writer won
        raise AbortedError(
            "the loan changed since it was read; read it again and retry", reason="ETAG_MISMATCH"
        ) from None


def _visible(session: Session, caller: Caller, loan_id: str, *, for_update: bool) -> Loan:
    loan = None
    if is_uuid(loan_id):
        query = select(Loan).where(Loan.id == loan_id)
        if for_update:  # PostgreSQL: concurrent writers of one loan queue here
            query = query.with_for_update()
        loan = session.scalar(query)
    if loan is None or caller.organization_id not in loan.parties():
        raise NotFoundError("no such loan", reason="LOAN_NOT_FOUND")
    return loan
