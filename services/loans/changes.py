"""Step 7, revalidate: tell WatchLoans subscribers that a loan changed, after commit only.

Use cases call ``record_change`` inside their transaction; how the change
leaves depends on the database, and in both cases only a commit releases it:

- PostgreSQL: ``pg_notify`` runs inside the transaction. PostgreSQL delivers
  the notification on commit (and drops it on rollback) to every replica that
  listens on ``CHANNEL``; each replica's listener fans it out locally.
- SQLite (one process per database): the change is held on the session, and
  the ``Database.on_commit`` hook hands ``pending_changes`` to the local bus.

The payload carries ids only, far below PostgreSQL's 8000-byte NOTIFY limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.loans.models import Loan

__all__ = [
    "CHANNEL",
    "ChangeKind",
    "LoanChanged",
    "decode_change",
    "encode_change",
    "pending_changes",
    "record_change",
]

CHANNEL = "loansuite_loan_changes"
_PENDING = "loan_changes"


class ChangeKind:
    """Kinds of change; the proto enum is ``CHANGE_KIND_`` + the value."""

    CREATED = "CREATED"
    UPDATED = "UPDATED"
    DELETED = "DELETED"
    STATE_CHANGED = "STATE_CHANGED"
    LENDER_INVITED = "LENDER_INVITED"
    KPI_CHANGED = "KPI_CHANGED"
    RATCHET_CHANGED = "RATCHET_CHANGED"
    RESULT_CHANGED = "RESULT_CHANGED"


@dataclass(frozen=True)
class LoanChanged:
    loan_id: str
    kind: str
    etag: str  # empty once deleted
    organization_ids: tuple[str, ...]  # who may hear of it
    change_time: datetime


def record_change(
    session: Session, loan: Loan, kind: str, now: datetime, *, also_for: str | None = None
) -> None:
    """Queue a change notification for the loan; sent only if the transaction commits.

    Call it after the change to the loan: its organizations as they are now
    hear of it (plus ``also_for``, e.g. a lender the change replaced), and the
    flush here makes the etag the new one.
    """
    session.flush()
    parties = (loan.borrower_organization_id, loan.lender_organization_id, also_for)
    orgs = tuple(dict.fromkeys(o for o in parties if o))
    etag = "" if kind == ChangeKind.DELETED else loan.etag
    change = LoanChanged(loan.id, kind, etag, orgs, now)
    if session.get_bind().dialect.name == "postgresql":
        # Transactional: PostgreSQL sends it at COMMIT, to every listening replica.
        session.execute(select(func.pg_notify(CHANNEL, encode_change(change))))
    else:
        session.info.setdefault(_PENDING, []).append(change)


def pending_changes(session: Session) -> list[LoanChanged]:
    """Take the changes a committed session recorded (SQLite; PostgreSQL notifies itself)."""
    changes: list[LoanChanged] = session.info.pop(_PENDING, [])
    return changes


def encode_change(change: LoanChanged) -> str:
    """The NOTIFY payload: ids, kind, etag and time; a few hundred bytes at most."""
    return json.dumps(
        {
            "loan_id": change.loan_id,
            "kind": change.kind,
            "etag": change.etag,
            "organization_ids": list(change.organization_ids),
            "change_time": change.change_time.isoformat(),
        },
        separators=(",", ":"),
    )


def decode_change(payload: str) -> LoanChanged:
    """The change a NOTIFY payload describes; raises ValueError/KeyError when malformed."""
    data = json.loads(payload)
    return LoanChanged(
        loan_id=str(data["loan_id"]),
        kind=str(data["kind"]),
        etag=str(data["etag"]),
        organization_ids=tuple(str(o) for o in data["organization_ids"]),
        change_time=datetime.fromisoformat(data["change_time"]),
    )
