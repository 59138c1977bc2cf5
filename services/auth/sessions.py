"""Sessions: an access token plus a refresh token that rotates on every use.

A refresh token is stored only as its SHA-256 hash. Using one revokes it and
issues the next, so a stolen token stops working as soon as either party
uses it again. Rows are read ``FOR UPDATE``: two racing refreshes of one token
cannot both succeed (SQLite gets the same from its single writer).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.auth.models import RefreshToken, User
from services.auth.tokens import IssuedToken, TokenMinter, new_refresh_token, refresh_token_hash
from services.shared.errors import UnauthenticatedError

__all__ = ["SessionGrant", "open_session", "revoke_session", "rotate_session"]


@dataclass(frozen=True)
class SessionGrant:
    """A new session as the client receives it; the raw refresh token exists only here."""

    access: IssuedToken
    refresh_token: str
    refresh_expire_time: datetime
    user: User


def open_session(
    session: Session,
    user: User,
    *,
    minter: TokenMinter,
    refresh_ttl: timedelta,
    now: datetime | None = None,
) -> SessionGrant:
    """Store a new refresh token for user and mint the access token that goes with it."""
    now = now or datetime.now(UTC)
    raw = new_refresh_token()
    expire_time = now + refresh_ttl
    session.add(
        RefreshToken(
            id=str(uuid.uuid4()),
            token_hash=refresh_token_hash(raw),
            user_id=user.id,
            create_time=now,
            expire_time=expire_time,
        )
    )
    access = minter.mint(
        subject=user.id, organization_id=user.organization_id, role=user.role, now=now
    )
    return SessionGrant(access, raw, expire_time, user)


def rotate_session(
    session: Session,
    refresh_token: str,
    *,
    minter: TokenMinter,
    refresh_ttl: timedelta,
    now: datetime | None = None,
) -> SessionGrant:
    """Revoke a live refresh token and open the session that replaces it."""
    now = now or datetime.now(UTC)
    row = _locked(session, refresh_token)
    if row is None or row.revoke_time is not None or row.expire_time <= now or not row.user.active:
        raise UnauthenticatedError(
            "the refresh token is unknown, expired or revoked", reason="REFRESH_TOKEN_INVALID"
        )
    row.revoke_time = now
    return open_session(session, row.user, minter=minter, refresh_ttl=refresh_ttl, now=now)


def revoke_session(session: Session, refresh_token: str, *, now: datetime) -> User | None:
    """Revoke a live refresh token; returns its user, or None if nothing was live."""
    row = _locked(session, refresh_token)
    if row is None or row.revoke_time is not None or row.expire_time <= now:
        return None
    row.revoke_time = now
    return row.user


def _locked(session: Session, refresh_token: str) -> RefreshToken | None:
    if not refresh_token:
        return None
    query = (
        select(RefreshToken)
        .where(RefreshToken.token_hash == refresh_token_hash(refresh_token))
        .with_for_update(of=RefreshToken)
    )
    return session.scalars(query).first()
