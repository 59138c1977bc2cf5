"""Password hashing with Argon2id at OWASP's minimum cost (19 MiB, 2 passes, 1 lane)."""

from __future__ import annotations

import os
import secrets
import threading

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["hash_password", "needs_rehash", "verify_password", "waste_verification"]

# Tens of milliseconds per call by design: callers keep it out of DB transactions.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)
# Each hash or verification takes 19 MiB while it runs: at most about one per core run
# at once, and the others queue, so that a burst of logins cannot multiply the memory.
_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


def hash_password(password: str) -> str:
    """A new salted Argon2id hash in PHC string form."""
    with _SLOTS:
        return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether password matches; an unreadable stored hash counts as a mismatch."""
    try:
        with _SLOTS:
            return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than today's."""
    return _HASHER.check_needs_rehash(password_hash)


def waste_verification(password: str) -> None:
    """Spend what a real verification costs, so an unknown email answers no faster."""
    verify_password(_DUMMY_HASH, password)


# Made at import, not on first use: the first unknown email must not answer slower either.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
