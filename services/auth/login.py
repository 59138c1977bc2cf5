"""Logging in: the account read first, Argon2 with no transaction open, then one write.

The write starts the session, or records LOGIN_FAILED and counts the failure
against the account and the peer (throttle.py); a failure that crosses a limit
also records LOGIN_THROTTLED. Every function that touches the database takes
the caller's session and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.auth import events, passwords, throttle
from services.auth.models import User
from services.auth.sessions import SessionGrant, open_session
from services.auth.throttle import ThrottleKey, ThrottlePolicy
from services.auth.tokens import TokenMinter
from services.shared.errors import UnauthenticatedError

__all__ = [
    "Account",
    "LoginAttempt",
    "PasswordCheck",
    "check_password",
    "find_account",
    "invalid_credentials",
    "log_in",
]


@dataclass(frozen=True)
class Account:
    """What a login needs to know about a user, read before the password is checked."""

    user_id: str
    organization_id: str
    password_hash: str
    active: bool


@dataclass(frozen=True)
class PasswordCheck:
    ok: bool
    new_hash: str | None = None  # set when the stored hash used outdated parameters


@dataclass(frozen=True)
class LoginAttempt:
    """One login as the write sees it: who, from where, and what Argon2 found."""

    email: str
    keys: tuple[ThrottleKey, ...]
    account: Account | None
    check: PasswordCheck


def invalid_credentials() -> UnauthenticatedError:
    """The one answer to every failed login: which part was wrong stays unsaid."""
    return UnauthenticatedError("invalid email or password", reason="INVALID_CREDENTIALS")


def find_account(session: Session, *, email: str) -> Account | None:
    """The account behind a (normalized) email, if any."""
    user = session.scalars(select(User).where(User.email == email)).first()
    if user is None:
        return None
    return Account(user.id, user.organization_id, user.password_hash, user.active)


def check_password(account: Account | None, password: str) -> PasswordCheck:
    """Verify outside any transaction; unknown and inactive accounts cost the same time."""
    if account is None:
        passwords.waste_verification(password)  # against a dummy Argon2 hash
        return PasswordCheck(ok=False)
    if not passwords.verify_password(account.password_hash, password) or not account.active:
        return PasswordCheck(ok=False)
    if passwords.needs_rehash(account.password_hash):
        return PasswordCheck(ok=True, new_hash=passwords.hash_password(password))
    return PasswordCheck(ok=True)


def log_in(
    session: Session,
    *,
    attempt: LoginAttempt,
    minter: TokenMinter,
    refresh_ttl: timedelta,
    policy: ThrottlePolicy,
    now: datetime | None = None,
) -> SessionGrant | None:
    """Open a session, or record the failure and return None (so the failure commits)."""
    now = now or datetime.now(UTC)
    # Again inside the write: failures racing this one may have locked a key meanwhile.
    throttle.check_not_locked(session, attempt.keys, now=now)
    account = attempt.account
    user = session.get(User, account.user_id) if account and attempt.check.ok else None
    if user is None or not user.active:  # also: deactivated since the password was checked
        _record_failure(session, attempt, policy=policy, now=now)
        return None
    if attempt.check.new_hash and account and user.password_hash == account.password_hash:
        user.password_hash = attempt.check.new_hash
    for key in attempt.keys:
        if key.kind == "account":  # the peer's count stays: see throttle.py
            throttle.clear(session, key)
    grant = open_session(session, user, minter=minter, refresh_ttl=refresh_ttl, now=now)
    events.record_user_event(session, "USER_LOGGED_IN", user, actor=events.actor_of(user))
    return grant


def _record_failure(
    session: Session, attempt: LoginAttempt, *, policy: ThrottlePolicy, now: datetime
) -> None:
    account = attempt.account
    user_id, organization_id = (account.user_id, account.organization_id) if account else ("", "")
    events.record_login_failure(
        session, email=attempt.email, user_id=user_id, organization_id=organization_id
    )
    for key, until in throttle.record_failure(session, attempt.keys, policy=policy, now=now):
        about_user = key.kind == "account"  # a peer's lockout is about no one user
        events.record_login_throttled(
            session,
            kind=key.kind,
            value=key.value,
            user_id=user_id if about_user else "",
            organization_id=organization_id if about_user else "",
            locked_until=until,
        )
