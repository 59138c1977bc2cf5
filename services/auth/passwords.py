"""Password hashing with Argon2id at OWASP's minimum cost (19 MiB, 2 passes, 1 lane)."""

from __future__ import annotations

import os
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["hash_password", "needs_rehash", "verify_password", "waste_verification"]

# Tens of milliseconds per call by design: callers keep it out of DB transactions.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)
# Each hash or verification takes 19 MiB while it runs, so they run on a pool of about
# one thread per core and the others queue: a burst of logins cannot multiply the
# memory. A pool rather than a semaphore in the calling thread, because the C
# allocator keeps freed memory in a per-thread arena: hashing on any of the server's
# 32 threads let each of them hold on to its own 19 MiB for good.
_POOL = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="argon2")


def hash_password(password: str) -> str:
    """A new salted Argon2id hash in PHC string form."""
    return _POOL.submit(lambda: _HASHER.hash(password)).result()


def verify_password(password_hash: str, password: str) -> bool:
    """Whether password matches; an unreadable stored hash counts as a mismatch."""
    try:
        return _POOL.submit(lambda: _HASHER.verify(password_hash, password)).result()
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
