"""Login throttling: too many failures for one account or from one peer lock it for a while.

The rule is a lockout window, not exponential back-off: a key (an account's
email, or a peer's address) that collects ``max_failures`` failed logins within
``window`` of its first one is locked for ``lockout``. While any key of a login
is locked, the login is refused before its password is even verified, the right
password included: that is the point. A successful login clears the account's
key but not the peer's, or an attacker could clear their own address by logging
into an account of their own between guesses.

The state is rows of the auth database, so it holds across worker processes,
replicas and restarts. Each row is known by a SHA-256 of its key: the table
holds neither emails nor addresses. Emails that belong to nobody are throttled
exactly like real ones, so a lockout tells nothing about who has an account.
IPv6 peers are grouped by their /64, the block one host usually controls.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.auth.models import LoginThrottle
from services.shared.errors import ResourceExhaustedError

__all__ = [
    "LoginThrottledError",
    "ThrottleKey",
    "ThrottlePolicy",
    "check_not_locked",
    "clear",
    "peer_address",
    "record_failure",
    "throttle_keys",
]

_SWEEP_BATCH: Final = 100


class LoginThrottledError(ResourceExhaustedError):
    """Too many failed logins: a real RESOURCE_EXHAUSTED status, with when to retry."""

    reason = "LOGIN_THROTTLED"
    message = "too many failed logins; try again later"
    as_status = True


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures, over how long, lock a key for how long."""

    max_account_failures: int = 5
    max_peer_failures: int = 50
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class ThrottleKey:
    """One thing a login is counted against: its account or its peer."""

    kind: Literal["account", "peer"]
    value: str
    limit: int

    @property
    def key_hash(self) -> str:
        return hashlib.sha256(f"{self.kind}:{self.value}".encode()).hexdigest()


def peer_address(peer: str) -> str:
    """The caller's address without its port, from gRPC's peer string ("ipv4:1.2.3.4:5")."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = rest.rpartition(":")[0].strip("[]") if rest.startswith("[") else rest
        try:
            return str(ipaddress.ip_network(f"{host.split('%')[0]}/64", strict=False))
        except ValueError:
            return host
    return peer  # a Unix socket or an unknown transport: the whole string is the peer


def throttle_keys(*, email: str, peer: str, policy: ThrottlePolicy) -> tuple[ThrottleKey, ...]:
    """The keys a login counts against: its (normalized) email and its peer's address."""
    return (
        ThrottleKey("account", email, policy.max_account_failures),
        ThrottleKey("peer", peer, policy.max_peer_failures),
    )


def check_not_locked(session: Session, keys: tuple[ThrottleKey, ...], *, now: datetime) -> None:
    """Raise LoginThrottledError, with the time left, while any of keys is locked."""
    query = select(LoginThrottle.locked_until).where(
        LoginThrottle.key_hash.in_([key.key_hash for key in keys]),
        LoginThrottle.locked_until > now,
    )
    until = max((u for u in session.scalars(query) if u is not None), default=None)
    if until is not None:
        raise LoginThrottledError(retry_delay=until - now)


def record_failure(
    session: Session, keys: tuple[ThrottleKey, ...], *, policy: ThrottlePolicy, now: datetime
) -> list[tuple[ThrottleKey, datetime]]:
    """Count a failed login against each key; returns the keys it locked, with until when."""
    locked: list[tuple[ThrottleKey, datetime]] = []
    for key in keys:
        row = _locked_row(session, key.key_hash, now)
        expired = row.locked_until is not None and row.locked_until <= now
        if expired or row.window_start <= now - policy.window:
            row.failures, row.window_start, row.locked_until = 0, now, None
        row.failures += 1
        if row.failures >= key.limit and row.locked_until is None:
            row.locked_until = now + policy.lockout
            locked.append((key, row.locked_until))
    _sweep(session, policy=policy, now=now)
    return locked


def clear(session: Session, key: ThrottleKey) -> None:
    """Forget the failures of key (an account that just logged in)."""
    session.execute(delete(LoginThrottle).where(LoginThrottle.key_hash == key.key_hash))


def _locked_row(session: Session, key_hash: str, now: datetime) -> LoginThrottle:
    # Insert-if-missing, then lock: racing failures of one key on PostgreSQL count
    # one after the other instead of one of them failing on the primary key.
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    values = {"key_hash": key_hash, "failures": 0, "window_start": now}
    session.execute(dialect.insert(LoginThrottle).values(values).on_conflict_do_nothing())
    row = session.get(LoginThrottle, key_hash, with_for_update=True, populate_existing=True)
    assert row is not None  # inserted above, and only sweeps delete, skipping locked rows
    return row


def _sweep(session: Session, *, policy: ThrottlePolicy, now: datetime) -> None:
    """Delete rows whose window and lock are both over, a batch at a time.

    Rows locked by another transaction are skipped (PostgreSQL), so two failures
    sweeping at once cannot deadlock on each other's rows.
    """
    stale = (
        select(LoginThrottle.key_hash)
        .where(
            LoginThrottle.window_start < now - policy.window,
            (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < now),
        )
        .limit(_SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    )
    session.execute(delete(LoginThrottle).where(LoginThrottle.key_hash.in_(stale)))
