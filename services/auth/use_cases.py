"""The rules of auth: accounts, sessions, who may read whom, and service tokens.

Every function that touches the database takes the caller's session and never
commits: the servicer owns the transaction. Logging in has a module of its own
(login.py): its Argon2 work happens before the transaction opens.
"""

from __future__ import annotations

import hmac
import re
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.auth import events
from services.auth.models import Organization, OrganizationType, SigningKey, User
from services.auth.schemas import NewAccount, Registration
from services.auth.sessions import Replay, SessionGrant, revoke_session, rotate_session
from services.auth.signing_keys import verifying_keys
from services.auth.tokens import IssuedToken, TokenMinter
from services.shared.errors import (
    AlreadyExistsError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    ValidationError,
)
from services.shared.identity import SERVICE_SUBJECT_PREFIX, Claims, Role
from services.shared.validation import is_uuid

__all__ = [
    "SessionGrant",
    "create_admin",
    "find_user_by_email",
    "get_current_user",
    "get_user",
    "issue_service_token",
    "list_public_keys",
    "log_out",
    "refresh_session",
    "register_user",
]

PLATFORM_ORGANIZATION_NAME = "Platform"
_SERVICE_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
_ORGANIZATION_TYPES = {
    Role.BORROWER: OrganizationType.BORROWER,
    Role.LENDER: OrganizationType.LENDER,
}


def register_user(
    session: Session, *, registration: Registration, password_hash: str, now: datetime | None = None
) -> User:
    """Create a borrower or lender with a new organization of the matching type."""
    now = now or datetime.now(UTC)
    organization = _new_organization(
        session, registration.organization_name, _ORGANIZATION_TYPES[registration.role], now
    )
    user = _new_user(session, registration, password_hash, organization, now)
    events.record_user_event(
        session,
        "USER_REGISTERED",
        user,
        actor=events.actor_of(user),
        changes=events.user_profile_changes(user),
    )
    return user


def create_admin(
    session: Session, *, account: NewAccount, password_hash: str, now: datetime | None = None
) -> User:
    """Create an admin in the platform organization (made on first use); operators only."""
    now = now or datetime.now(UTC)
    query = select(Organization).where(Organization.type == OrganizationType.PLATFORM)
    organization = session.scalars(query.order_by(Organization.create_time).limit(1)).first()
    if organization is None:
        organization = _new_organization(
            session, PLATFORM_ORGANIZATION_NAME, OrganizationType.PLATFORM, now
        )
    user = _new_user(session, account, password_hash, organization, now)
    changes = events.user_profile_changes(user)
    events.record_user_event(session, "ADMIN_CREATED", user, actor=None, changes=changes)
    return user


def refresh_session(
    session: Session, *, refresh_token: str, minter: TokenMinter, refresh_ttl: timedelta
) -> SessionGrant | None:
    """Exchange a live refresh token for a new session; the old token stops working.

    None: the token was replayed after its rotation, its family is revoked and
    REFRESH_TOKEN_REUSED recorded; the caller commits that, then refuses the call.
    """
    outcome = rotate_session(session, refresh_token, minter=minter, refresh_ttl=refresh_ttl)
    if isinstance(outcome, Replay):
        events.record_refresh_token_reused(
            session, outcome.user, family_id=outcome.family_id, revoked=outcome.revoked
        )
        return None
    actor = events.actor_of(outcome.user)
    events.record_user_event(session, "SESSION_REFRESHED", outcome.user, actor=actor)
    return outcome


def log_out(session: Session, *, refresh_token: str, now: datetime | None = None) -> datetime:
    """Revoke a refresh token; revoking one that is already dead succeeds too."""
    if not refresh_token:
        raise ValidationError([("refresh_token", "REFRESH_TOKEN_REQUIRED", "is required")])
    now = now or datetime.now(UTC)
    user = revoke_session(session, refresh_token, now=now)
    if user is not None:
        events.record_user_event(session, "USER_LOGGED_OUT", user, actor=events.actor_of(user))
    return now


def get_user(session: Session, *, claims: Claims, user_id: str) -> User:
    """A user with their organization, for services, admins and the user themself."""
    if claims.role is not Role.SERVICE:
        caller = _current_user(session, claims)
        if caller.id != user_id and caller.role is not Role.ADMIN:
            raise PermissionDeniedError("you may only read your own user")
    # Only a canonical UUID reaches the database (a NUL byte would fail on PostgreSQL).
    user = session.get(User, user_id) if is_uuid(user_id) else None
    if user is None:
        raise NotFoundError("no user has this id", reason="USER_NOT_FOUND")
    return user


def find_user_by_email(session: Session, *, claims: Claims, email: str) -> User:
    """The active user with this email; for service identities only (loans invites lenders)."""
    if claims.role is not Role.SERVICE:
        raise PermissionDeniedError(
            "only services look users up by email", reason="SERVICE_IDENTITY_REQUIRED"
        )
    user = session.scalar(select(User).where(User.email == email, User.active.is_(True)))
    if user is None:
        raise NotFoundError("no active user has this email", reason="USER_NOT_FOUND")
    return user


def get_current_user(session: Session, *, claims: Claims) -> User:
    """The active user the access token was issued to."""
    if claims.role is Role.SERVICE:
        raise PermissionDeniedError("a service identity is not a user", reason="NOT_A_USER")
    return _current_user(session, claims)


def list_public_keys(
    session: Session, *, keep_for: timedelta, now: datetime | None = None
) -> list[SigningKey]:
    """Every key that may have signed a live token (of lifetime keep_for), oldest first."""
    return verifying_keys(session, keep_for=keep_for, now=now or datetime.now(UTC))


def issue_service_token(
    *, service_name: str, service_secret: str, expected_secret: str, minter: TokenMinter
) -> IssuedToken:
    """A short-lived SERVICE token for a deployment's service that knows the shared secret."""
    if not _SERVICE_NAME.fullmatch(service_name):
        description = "must be 1-32 lower-case letters, digits or '-', starting with a letter"
        raise ValidationError([("service_name", "SERVICE_NAME_INVALID", description)])
    # Constant time: how much of the secret matched must not show in the latency.
    if not hmac.compare_digest(service_secret.encode(), expected_secret.encode()):
        raise UnauthenticatedError("the service secret is wrong", reason="SERVICE_SECRET_INVALID")
    subject = f"{SERVICE_SUBJECT_PREFIX}{service_name}"
    return minter.mint(subject=subject, organization_id="", role=Role.SERVICE)


def _current_user(session: Session, claims: Claims) -> User:
    user = session.get(User, claims.subject)
    if user is None or not user.active:
        raise UnauthenticatedError(
            "the user no longer exists or is deactivated", reason="USER_INACTIVE"
        )
    return user


def _new_organization(
    session: Session, name: str, kind: OrganizationType, now: datetime
) -> Organization:
    organization = Organization(id=str(uuid.uuid4()), name=name, type=kind, create_time=now)
    session.add(organization)
    return organization


def _new_user(
    session: Session,
    account: NewAccount,
    password_hash: str,
    organization: Organization,
    now: datetime,
) -> User:
    if session.scalars(select(User.id).where(User.email == account.email)).first() is not None:
        raise _email_taken()
    user = User(
        id=str(uuid.uuid4()),
        email=account.email,
        name=account.name,
        role=account.role,
        organization=organization,
        password_hash=password_hash,
        active=True,
        create_time=now,
        update_time=now,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError:  # a racing registration took the email after our check
        raise _email_taken() from None
    return user


def _email_taken() -> AlreadyExistsError:
    return AlreadyExistsError("a user with this email already exists", reason="EMAIL_TAKEN")
