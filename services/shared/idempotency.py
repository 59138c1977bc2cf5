"""Idempotent writes by client request id: a replay returns the original response.

The response is stored as bytes in the same transaction as the write it
describes, keyed by (caller, rpc, request_id). The key is claimed first, with
``INSERT … ON CONFLICT DO NOTHING`` and an empty response; the write runs only
when the claim inserted a row, and then stores its response in that row.
A call that finds the key taken reads the stored response instead. A racing
call with the same key in another transaction (another batch, another
process) waits in its INSERT until the first commits or rolls back, so it
never fails on the first one's effect (a new etag, a moved state): it
replays the answer. Two calls with one key in the same batch run one after
the other, so the second reads the first's answer.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    FromClause,
    Index,
    LargeBinary,
    String,
    TableClause,
    bindparam,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column

from services.shared.columns import UTCDateTime
from services.shared.db import Database, table_of
from services.shared.driver_statement import DriverRow, DriverStatement
from services.shared.errors import ValidationError
from services.shared.validation import check_request_id

__all__ = [
    "IdempotencyKey",
    "IdempotencyMixin",
    "keyed",
    "run_idempotent",
]

# In a session's info: the claims sent ahead of a batch's writes, by keyed write.
_CLAIMED = "loansuite.idempotency.claimed"


class IdempotencyMixin:
    """Columns of a service's idempotency table; each service declares its mapped class."""

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    rpc: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    response: Mapped[bytes] = mapped_column(LargeBinary)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        # The retention sweep finds the oldest records by it.
        return (Index(f"ix_{cls.__tablename__}_create_time", "create_time"),)

    if TYPE_CHECKING:
        __tablename__: str
        # What declarative gives the mapped subclass, typed as DeclarativeBase types it.
        __table__: ClassVar[FromClause]


@dataclass(frozen=True)
class IdempotencyKey:
    scope: str  # who may replay: the calling user
    rpc: str
    request_id: str
    fingerprint: str  # digest of the request, so a reused id with other content is caught

    @classmethod
    def of(cls, *, scope: str, rpc: str, request_id: str, request: bytes) -> IdempotencyKey:
        check_request_id(request_id)
        digest = hashlib.sha256(request).hexdigest()
        return cls(scope=scope, rpc=rpc, request_id=request_id, fingerprint=digest)


def run_idempotent(
    db: Database,
    model: type[IdempotencyMixin],  # the service's mapped class
    key: IdempotencyKey,
    write: Callable[[Session], bytes],
) -> bytes:
    """Run write once per key, group-committed; later calls with the key get the first response."""
    return db.submit(keyed(db, model, key, write))


def keyed(
    db: Database,
    model: type[IdempotencyMixin],
    key: IdempotencyKey,
    write: Callable[[Session], bytes],
) -> Callable[[Session], bytes]:
    """The write, run only if its key is new; otherwise the stored response of the key."""
    statements = _statements(table_of(model), "sqlite" if db.is_sqlite else "postgresql")
    return _Keyed(statements, key, write)


class _Keyed:
    """A keyed write. In a group commit that sends statements together (PostgreSQL), its
    claim goes ahead with the batch's other claims, and the write reads the answer."""

    __slots__ = ("_key", "_statements", "_write")

    def __init__(
        self, statements: _Statements, key: IdempotencyKey, write: Callable[[Session], bytes]
    ) -> None:
        self._statements = statements
        self._key = key
        self._write = write

    def ahead(self, session: Session) -> None:
        claimed = self._statements.claim.first_later(session.connection(), _claim_row(self._key))
        session.info.setdefault(_CLAIMED, {})[self] = claimed

    def __call__(self, session: Session) -> bytes:
        claimed = session.info.get(_CLAIMED, {}).pop(self, None)
        return _once(session, self._statements, self._key, self._write, claimed)


@dataclass(frozen=True)
class _Statements:
    """The three statements of a keyed write, built once per table and dialect."""

    claim: DriverStatement  # INSERT … ON CONFLICT DO NOTHING RETURNING: a row if the key was new
    store: DriverStatement  # UPDATE the claimed row with the response
    stored: DriverStatement  # SELECT the fingerprint and response of a key


def _once(
    session: Session,
    statements: _Statements,
    key: IdempotencyKey,
    write: Callable[[Session], bytes],
    claimed: Callable[[], DriverRow | None] | None,
) -> bytes:
    connection = session.connection()
    won = statements.claim.first(connection, _claim_row(key)) if claimed is None else claimed()
    if won is None:  # taken: replay its answer
        found = statements.stored.first(connection, _key_params(key))
        if found is None:  # swept since the claim saw it: as rare as it is unanswerable here
            raise NoResultFound("the idempotency record of a taken key went away")
        if found.fingerprint != key.fingerprint:
            raise ValidationError(
                [("request_id", "REQUEST_ID_REUSED", "was already used for a different request")]
            )
        return bytes(found.response)
    response = write(session)
    statements.store.send(connection, {**_key_params(key), "new_response": response})
    return response


def _claim_row(key: IdempotencyKey) -> dict[str, Any]:
    return {**vars(key), "response": b"", "create_time": datetime.now(UTC)}


def _key_params(key: IdempotencyKey) -> dict[str, str]:
    return {"k_scope": key.scope, "k_rpc": key.rpc, "k_request_id": key.request_id}


@functools.cache
def _statements(table: TableClause, dialect: str) -> _Statements:
    # Drivers do not all report a row count for ON CONFLICT DO NOTHING; RETURNING is exact.
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    claim = insert(table).on_conflict_do_nothing().returning(table.c.scope)
    matches = (
        table.c.scope == bindparam("k_scope"),
        table.c.rpc == bindparam("k_rpc"),
        table.c.request_id == bindparam("k_request_id"),
    )
    store = update(table).where(*matches).values(response=bindparam("new_response"))
    stored = select(table.c.fingerprint, table.c.response).where(*matches)
    return _Statements(DriverStatement(claim), DriverStatement(store), DriverStatement(stored))
