"""Signing keys at rest: sealed on creation, sealed when found in plaintext, rotated.

The key with the highest generation signs; an older one is retired when a newer
one takes over and still verifies until every token it may have signed has
expired (``verifying_keys``). Private keys exist in plaintext only in memory:
the database holds them sealed under the key-encryption key.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.auth.key_encryption import KeyEncryptionKey, is_sealed
from services.auth.models import SigningKey
from services.auth.tokens import ALGORITHM, generate_key_material
from services.shared.db import Database

__all__ = [
    "KEY_SWITCH_SECONDS",
    "CurrentSigningKey",
    "Rotation",
    "ensure_signing_key",
    "rotate_signing_key",
    "seal_plaintext_keys",
    "verifying_keys",
]

# How long a running server may go on signing with a key after a rotation: it looks
# for a newer generation this often.
KEY_SWITCH_SECONDS: Final = 5.0
# On top of a token's lifetime: clock skew between the servers and the verifiers.
_VERIFY_LEEWAY: Final = timedelta(seconds=60)


@dataclass(frozen=True)
class Rotation:
    """What a rotation did: the key that signs now, and the one it retired."""

    kid: str
    retired_kid: str | None
    generation: int


def ensure_signing_key(db: Database, kek: KeyEncryptionKey, *, attempts: int = 3) -> str:
    """The kid of the current signing key, created on first start; racing replicas agree."""
    for _ in range(attempts):
        try:
            with db.write() as session:
                current = _newest(session)
                return current.kid if current else _add_key(session, kek, 1).kid
        except IntegrityError:
            continue  # another replica inserted this generation first: use theirs
    raise RuntimeError("no signing key could be read or created")


def rotate_signing_key(
    db: Database, kek: KeyEncryptionKey, *, keep_for: timedelta, now: datetime | None = None
) -> Rotation:
    """A new signing key; the old one retires now; keys retired past keep_for are deleted."""
    now = now or datetime.now(UTC)
    with db.write() as session:
        previous = _newest(session)
        generation = previous.generation + 1 if previous else 1
        if previous is not None:
            previous.retire_time = now
        key = _add_key(session, kek, generation, now=now)
        # Every token these signed has expired: their private halves go for good.
        cutoff = now - keep_for - _VERIFY_LEEWAY
        session.execute(delete(SigningKey).where(SigningKey.retire_time < cutoff))
    return Rotation(key.kid, previous.kid if previous else None, generation)


def verifying_keys(session: Session, *, keep_for: timedelta, now: datetime) -> list[SigningKey]:
    """Every key that may have signed a live token, oldest first."""
    # A retired key may have gone on signing for KEY_SWITCH_SECONDS in a running server.
    cutoff = now - keep_for - timedelta(seconds=KEY_SWITCH_SECONDS) - _VERIFY_LEEWAY
    query = select(SigningKey).where(
        (SigningKey.retire_time.is_(None)) | (SigningKey.retire_time > cutoff)
    )
    return list(session.scalars(query.order_by(SigningKey.generation)))


def seal_plaintext_keys(db: Database, kek: KeyEncryptionKey) -> int:
    """Seal every private key still stored in plaintext (from before revision 0002).

    The migration renamed the column but could not encrypt (it has no KEK); this
    runs at each start before anything signs, and is a no-op once all are sealed.
    On SQLite the file is then vacuumed and its log truncated, so no free page
    keeps the plaintext; on PostgreSQL old row versions remain until VACUUM, which
    is why README advises a rotation after upgrading.
    """
    with db.write() as session:
        keys = [
            key
            for key in session.scalars(select(SigningKey))
            if not is_sealed(key.sealed_private_key)
        ]
        for key in keys:
            key.sealed_private_key = kek.seal(key.kid, key.sealed_private_key)
    if keys and db.is_sqlite:
        with db.engine.connect().execution_options(sqlite_begin=None) as connection:
            connection.execute(text("VACUUM"))
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    return len(keys)


class CurrentSigningKey:
    """The SigningKeySource of a running server: the newest key, looked up every few seconds.

    A rotation made by another process (``loansuite auth rotate-keys``) is picked
    up within KEY_SWITCH_SECONDS, without a restart.
    """

    def __init__(
        self, db: Database, kek: KeyEncryptionKey, *, recheck_seconds: float = KEY_SWITCH_SECONDS
    ) -> None:
        self._db = db
        self._kek = kek
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._current: tuple[str, Ed25519PrivateKey] | None = None

    def current(self) -> tuple[str, Ed25519PrivateKey]:
        with self._lock:
            if self._current is None or time.monotonic() - self._checked_at >= self._recheck:
                self._current = self._load()
                self._checked_at = time.monotonic()
            return self._current

    def _load(self) -> tuple[str, Ed25519PrivateKey]:
        with self._db.read() as session:
            newest = _newest(session)
            if newest is None:
                raise RuntimeError("no signing key: ensure_signing_key runs at start")
            if self._current is not None and self._current[0] == newest.kid:
                return self._current
            pem = self._kek.unseal(newest.kid, newest.sealed_private_key)
        private_key = serialization.load_pem_private_key(pem.encode(), None)
        if not isinstance(private_key, Ed25519PrivateKey):
            raise ValueError(f"signing key {newest.kid} is not an Ed25519 key")
        return newest.kid, private_key


def _newest(session: Session) -> SigningKey | None:
    query = select(SigningKey).order_by(SigningKey.generation.desc()).limit(1)
    return session.scalars(query).first()


def _add_key(
    session: Session, kek: KeyEncryptionKey, generation: int, *, now: datetime | None = None
) -> SigningKey:
    material = generate_key_material()
    key = SigningKey(
        kid=material.kid,
        generation=generation,
        algorithm=ALGORITHM,
        sealed_private_key=kek.seal(material.kid, material.private_key_pem),
        public_key_pem=material.public_key_pem,
        create_time=now or datetime.now(UTC),
    )
    session.add(key)
    session.flush()  # the unique generation decides a race here, inside the caller's retry
    return key
