"""Audit events of auth: written to its outbox with the change, failures included."""

from __future__ import annotations

import json
from collections.abc import Mapping

from loansuite.auth.v1 import auth_service_pb2 as pb

from tests.auth.support import AuthService
from tests.support import PASSWORD


def test_register_and_logins_leave_their_events(auth: AuthService) -> None:
    user = auth.register(pb.USER_ROLE_LENDER, email="ada@example.com")
    auth.log_in("ada@example.com")
    auth.stub.Login(pb.LoginRequest(email="ada@example.com", password="wrong password"))
    auth.stub.Login(
        pb.LoginRequest(email=" Nobody@Example.com", password=PASSWORD),
        metadata=(("x-request-id", "req-failed-login"),),
    )

    registered, logged_in, failed, unknown = auth.outbox()

    organization = [user.organization.id]
    actor = (user.id, user.organization.id, "LENDER")
    assert registered["action"] == "USER_REGISTERED"
    assert (registered["resource_type"], registered["resource_id"]) == ("user", user.id)
    assert actor_of(registered) == actor
    assert registered["organization_ids"] == organization
    assert registered["source"] == "auth"
    assert {field: json.loads(new) for field, _, new in registered["changes"]} == {
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "role": "LENDER",
        "organization_id": user.organization.id,
    }
    assert "password" not in json.dumps(registered).lower()
    assert logged_in["action"] == "USER_LOGGED_IN"
    assert (logged_in["resource_id"], actor_of(logged_in)) == (user.id, actor)
    assert failed["action"] == "LOGIN_FAILED"
    assert (failed["resource_id"], actor_of(failed)) == (user.id, ("", "", ""))
    assert failed["organization_ids"] == organization
    assert failed["changes"] == [["email", "", '"ada@example.com"']]
    assert unknown["action"] == "LOGIN_FAILED"
    assert (unknown["resource_id"], unknown["organization_ids"]) == ("", [])
    assert unknown["changes"] == [["email", "", '"nobody@example.com"']]
    assert unknown["request_id"] == "req-failed-login"


def test_rejected_registrations_write_nothing(auth: AuthService) -> None:
    taken = auth.register()
    before = auth.outbox()

    invalid = auth.stub.Register(pb.RegisterRequest(email="x@example.com"))
    admin = auth.stub.Register(
        pb.RegisterRequest(
            email="root@example.com",
            password=PASSWORD,
            name="Root",
            role=pb.USER_ROLE_ADMIN,
            organization_name="Root Org",
        )
    )
    duplicate = auth.stub.Register(
        pb.RegisterRequest(
            email=taken.email,
            password=PASSWORD,
            name="Again",
            role=pb.USER_ROLE_BORROWER,
            organization_name="Other Org",
        )
    )

    assert [r.error.reason for r in (invalid, admin, duplicate)] == [
        "PASSWORD_TOO_SHORT",
        "ROLE_NOT_ALLOWED",
        "EMAIL_TAKEN",
    ]
    assert auth.outbox() == before
    assert auth.sql("SELECT count(*) FROM organizations") == [(1,)]


def test_refresh_and_logout_leave_their_events(auth: AuthService) -> None:
    user = auth.register()
    session = auth.log_in(user.email)
    refreshed = auth.stub.RefreshSession(
        pb.RefreshSessionRequest(refresh_token=session.refresh_token)
    ).session
    logout = pb.LogoutRequest(refresh_token=refreshed.refresh_token)
    auth.stub.Logout(logout)
    auth.stub.Logout(logout)  # nothing left to revoke: no second event

    actions = [(event["action"], event["resource_id"]) for event in auth.outbox()]

    assert actions == [
        ("USER_REGISTERED", user.id),
        ("USER_LOGGED_IN", user.id),
        ("SESSION_REFRESHED", user.id),
        ("USER_LOGGED_OUT", user.id),
    ]


def actor_of(event: Mapping[str, object]) -> tuple[object, object, object]:
    return event["actor_user_id"], event["actor_organization_id"], event["actor_role"]
