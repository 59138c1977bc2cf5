"""Sessions: an access token plus a refresh token that rotates on every use.

A refresh token is stored only as its SHA-256 hash. Using one revokes it and
issues the next, so a stolen token stops working as soon as either party
uses it again. Rows are read ``FOR UPDATE``: two racing refreshes of one token
cannot both succeed (SQLite gets the same from its single writer).

The tokens descended from one login form a family. Presenting a token that was
already exchanged for its successor means two parties hold the family (RFC 9700
§4.14.2): the whole family is revoked, so neither the thief nor the victim can
go on, and the victim logs in again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.auth.models import RefreshToken, User
from services.auth.tokens import IssuedToken, TokenMinter, new_refresh_token, refresh_token_hash
from services.shared.errors import UnauthenticatedError

__all__ = [
    "Replay",
    "SessionGrant",
    "invalid_refresh_token",
    "open_session",
    "revoke_session",
    "rotate_session",
]


@dataclass(frozen=True)
class SessionGrant:
    """A new session as the client receives it; the raw refresh token exists only here."""

    access: IssuedToken
    refresh_token: str
    refresh_expire_time: datetime
    user: User
    token_id: str = ""  # the refresh token's row


@dataclass(frozen=True)
class Replay:
    """A refresh token used again after its rotation; its family is now revoked."""

    user: User
    family_id: str
    revoked: int  # live tokens of the family that this revoked


def open_session(
    session: Session,
    user: User,
    *,
    minter: TokenMinter,
    refresh_ttl: timedelta,
    now: datetime | None = None,
    family_id: str | None = None,
) -> SessionGrant:
    """Store a new refresh token for user and mint the access token that goes with it."""
    now = now or datetime.now(UTC)
    raw = new_refresh_token()
    expire_time = now + refresh_ttl
    token_id = str(uuid.uuid4())
    session.add(
        RefreshToken(
            id=token_id,
            token_hash=refresh_token_hash(raw),
            user_id=user.id,
            family_id=family_id or token_id,  # a login starts a family named by its first token
            create_time=now,
            expire_time=expire_time,
        )
    )
    access = minter.mint(
        subject=user.id, organization_id=user.organization_id, role=user.role, now=now
    )
    return SessionGrant(access, raw, expire_time, user, token_id)


def rotate_session(
    session: Session,
    refresh_token: str,
    *,
    minter: TokenMinter,
    refresh_ttl: timedelta,
    now: datetime | None = None,
) -> SessionGrant | Replay:
    """Revoke a live refresh token and open the session that replaces it.

    A token already exchanged for its successor revokes its whole family instead
    and comes back as a Replay, for the caller to record and refuse after commit.
    """
    now = now or datetime.now(UTC)
    row = _locked(session, refresh_token)
    if row is not None and row.replaced_by_id is not None:
        return Replay(row.user, row.family_id, _revoke_family(session, row.family_id, now))
    if row is None or row.revoke_time is not None or row.expire_time <= now or not row.user.active:
        raise invalid_refresh_token()
    row.revoke_time = now
    grant = open_session(
        session, row.user, minter=minter, refresh_ttl=refresh_ttl, now=now, family_id=row.family_id
    )
    row.replaced_by_id = grant.token_id
    return grant


def invalid_refresh_token() -> UnauthenticatedError:
    """The one answer to a refresh token that cannot be used, replayed ones included."""
    return UnauthenticatedError(
        "the refresh token is unknown, expired or revoked", reason="REFRESH_TOKEN_INVALID"
    )


def _revoke_family(session: Session, family_id: str, now: datetime) -> int:
    result = session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoke_time.is_(None))
        .values(revoke_time=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


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
