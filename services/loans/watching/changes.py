"""Step 7, revalidate: tell WatchLoans subscribers that a loan changed, after commit only.

The write path (aggregate.py) calls ``record_change`` inside the transaction; how the change
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

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from services.loans.vocabulary import ChangeKind
from services.shared.driver_statement import DriverStatement

__all__ = [
    "CHANNEL",
    "LoanChanged",
    "decode_change",
    "encode_change",
    "pending_changes",
    "record_change",
]

CHANNEL = "loansuite_loan_changes"
_NOTIFY = DriverStatement(select(func.pg_notify(CHANNEL, bindparam("payload")).label("sent")))
_PENDING = "loan_changes"


@dataclass(frozen=True)
class LoanChanged:
    loan_id: str
    kind: ChangeKind
    etag: str  # empty once deleted
    organization_ids: tuple[str, ...]  # who may hear of it
    change_time: datetime


def record_change(
    session: Session,
    loan_id: str,
    kind: ChangeKind,
    etag: str,
    organization_ids: tuple[str, ...],
    now: datetime,
) -> None:
    """Queue a change notification for the loan's organizations; sent only if it commits."""
    change = LoanChanged(loan_id, kind, etag, organization_ids, now)
    if session.get_bind().dialect.name == "postgresql":
        # Transactional: PostgreSQL sends it at COMMIT, to every listening replica.
        _NOTIFY.send(session.connection(), {"payload": encode_change(change)})
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
        kind=ChangeKind(data["kind"]),
        etag=str(data["etag"]),
        organization_ids=tuple(str(o) for o in data["organization_ids"]),
        change_time=datetime.fromisoformat(data["change_time"]),
    )
