"""Idempotent writes by client request id: a replay returns the original response.

The response is stored as bytes in the same transaction as the write it
describes, keyed by (caller, rpc, request_id). Two racing calls with one key
both try to insert it; the unique key lets exactly one commit, and the loser
rolls back everything it wrote and answers with the winner's stored response.
On PostgreSQL the second also queues on an advisory lock of the key first, so
it never fails on the first one's effect (a new etag, a moved state) instead.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import LargeBinary, String, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from services.shared.columns import UTCDateTime
from services.shared.db import Database
from services.shared.errors import ValidationError

__all__ = ["IdempotencyKey", "IdempotencyMixin", "run_idempotent"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class IdempotencyMixin:
    """Columns of a service's idempotency table; each service declares its mapped class."""

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    rpc: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    response: Mapped[bytes] = mapped_column(LargeBinary)
    create_time: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class IdempotencyKey:
    scope: str  # who may replay: the calling user
    rpc: str
    request_id: str
    fingerprint: str  # digest of the request, so a reused id with other content is caught

    @classmethod
    def of(cls, *, scope: str, rpc: str, request_id: str, request: bytes) -> IdempotencyKey:
        if not _REQUEST_ID.match(request_id):
            raise ValidationError(
                [("request_id", "REQUEST_ID_INVALID", "must be 1-128 letters, digits or ._:-")]
            )
        digest = hashlib.sha256(request).hexdigest()
        return cls(scope=scope, rpc=rpc, request_id=request_id, fingerprint=digest)


def run_idempotent(
    db: Database, model: Any, key: IdempotencyKey | None, write: Callable[[Session], bytes]
) -> bytes:
    """Run write in one transaction, once per key; later calls get the first response."""
    if key is None:
        with db.write() as session:
            return write(session)
    for _ in range(2):
        try:
            with db.write() as session:
                _queue_behind_same_key(session, key)
                stored = _stored(session, model, key)
                if stored is not None:
                    return stored
                response = write(session)
                row = {**vars(key), "response": response, "create_time": datetime.now(UTC)}
                session.execute(insert(model.__table__), row)
                return response
        except IntegrityError:
            continue  # a racing call with the same key committed first: read its answer
    raise RuntimeError("idempotency key neither inserted nor found")


def _queue_behind_same_key(session: Session, key: IdempotencyKey) -> None:
    """PostgreSQL: a call waits here for a racing call with the same key to finish.

    Without it, a retry racing its original could fail on the original's own
    effect (an etag mismatch, a state already moved) instead of replaying its
    answer. On SQLite, writers are serialized anyway.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    name = "\0".join((key.scope, key.rpc, key.request_id)).encode()
    lock_id = int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big", signed=True)
    session.execute(select(func.pg_advisory_xact_lock(lock_id)))


def _stored(session: Session, model: Any, key: IdempotencyKey) -> bytes | None:
    table = model.__table__  # Core statements: this runs on every keyed write
    row = session.execute(
        select(table.c.fingerprint, table.c.response).where(
            table.c.scope == key.scope,
            table.c.rpc == key.rpc,
            table.c.request_id == key.request_id,
        )
    ).one_or_none()
    if row is None:
        return None
    if row.fingerprint != key.fingerprint:
        raise ValidationError(
            [("request_id", "REQUEST_ID_REUSED", "was already used for a different request")]
        )
    return bytes(row.response)
