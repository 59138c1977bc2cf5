"""The audit events of auth, written to its outbox in the caller's transaction."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from services.auth.models import OutboxEvent, User
from services.shared.identity import Caller
from services.shared.outbox import record_event

__all__ = ["actor_of", "record_login_failure", "record_user_event", "user_profile_changes"]

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
