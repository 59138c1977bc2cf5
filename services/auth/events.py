"""The audit events of auth, written to its outbox in the caller's transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from services.auth.models import OutboxEvent, User
from services.shared.identity import Caller
from services.shared.outbox import record_event

__all__ = [
    "actor_of",
    "record_login_failure",
    "record_login_throttled",
    "record_refresh_token_reused",
    "record_user_event",
    "user_profile_changes",
]

SOURCE = "auth"
EMAIL_IN_EVENT_MAX_LENGTH = 254  # a failed login may send anything as its email


def actor_of(user: User) -> Caller:
    """The user as the actor of an event they caused."""
    return Caller(
        user_id=user.id, organization_id=user.organization_id, role=user.role, email=user.email
    )


def user_profile_changes(user: User) -> list[tuple[str, str, str]]:
    """The fields of a new user, as (field, old JSON, new JSON): never the password or hash."""
    profile = {
        "email": user.email,
        "name": user.name,
        "role": user.role.value,
        "organization_id": user.organization_id,
    }
    return [(field, "", json.dumps(value)) for field, value in profile.items()]


def record_user_event(
    session: Session,
    action: str,
    user: User,
    *,
    actor: Caller | None,
    changes: list[tuple[str, str, str]] | None = None,
) -> None:
    """An event about user, visible to their organization."""
    record_event(
        session,
        OutboxEvent,
        source=SOURCE,
        action=action,
        resource_type="user",
        resource_id=user.id,
        actor=actor,
        organization_ids=[user.organization_id],
        changes=changes,
    )


def record_login_failure(
    session: Session, *, email: str, user_id: str, organization_id: str
) -> None:
    """LOGIN_FAILED: anonymous; about the user if the email belongs to one, else about nobody."""
    record_event(
        session,
        OutboxEvent,
        source=SOURCE,
        action="LOGIN_FAILED",
        resource_type="user",
        resource_id=user_id,
        actor=None,
        organization_ids=[organization_id],  # record_event drops an empty id
        changes=[("email", "", json.dumps(email[:EMAIL_IN_EVENT_MAX_LENGTH]))],
    )


def record_login_throttled(
    session: Session,
    *,
    kind: str,
    value: str,
    user_id: str,
    organization_id: str,
    locked_until: datetime,
) -> None:
    """LOGIN_THROTTLED: an account (about its user, if any) or a peer locked out; anonymous."""
    field = "email" if kind == "account" else "peer"
    changes = [
        (field, "", json.dumps(value[:EMAIL_IN_EVENT_MAX_LENGTH])),
        ("throttled", "", json.dumps(kind)),
        ("locked_until", "", json.dumps(_iso(locked_until))),
    ]
    record_event(
        session,
        OutboxEvent,
        source=SOURCE,
        action="LOGIN_THROTTLED",
        resource_type="user",
        resource_id=user_id,
        actor=None,
        organization_ids=[organization_id],
        changes=changes,
    )


def record_refresh_token_reused(
    session: Session, user: User, *, family_id: str, revoked: int
) -> None:
    """REFRESH_TOKEN_REUSED: a rotated refresh token came back; its family was revoked."""
    changes = [
        ("family_id", "", json.dumps(family_id)),
        ("revoked_tokens", "", json.dumps(revoked)),
    ]
    record_user_event(session, "REFRESH_TOKEN_REUSED", user, actor=None, changes=changes)


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
