"""A rotated refresh token used again revokes its whole family, and says so in the audit log."""

from __future__ import annotations

import json

from loansuite.auth.v1 import auth_service_pb2 as pb
from loansuite.common.v1 import error_pb2

from tests.auth.support import AuthService


def refresh(auth: AuthService, token: str) -> pb.RefreshSessionResponse:
    return auth.stub.RefreshSession(pb.RefreshSessionRequest(refresh_token=token))


def test_a_replayed_token_revokes_every_descendant(auth: AuthService) -> None:
    user = auth.register()
    first = auth.log_in(user.email)
    other_login = auth.log_in(user.email)  # another device: a family of its own
    second = refresh(auth, first.refresh_token).session
    third = refresh(auth, second.refresh_token).session

    replay = refresh(auth, first.refresh_token)  # a thief, or the victim, holds R1
    latest = refresh(auth, third.refresh_token)
    unrelated = refresh(auth, other_login.refresh_token)

    assert replay.error.code == error_pb2.ERROR_CODE_UNAUTHENTICATED
    assert replay.error.reason == latest.error.reason == "REFRESH_TOKEN_INVALID"
    assert unrelated.WhichOneof("result") == "session"
    reused = [e for e in auth.outbox() if e["action"] == "REFRESH_TOKEN_REUSED"]
    assert len(reused) == 1
    assert reused[0]["resource_id"] == user.id
    changes = {field: json.loads(new) for field, _, new in reused[0]["changes"]}
    assert changes["revoked_tokens"] == 1  # the live one, third's
    (live,) = auth.sql(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = :user AND revoke_time IS NULL",
        user=user.id,
    )
    assert live == (1,)  # only the unrelated family's newest token


def test_a_logged_out_token_is_refused_without_a_reuse_event(auth: AuthService) -> None:
    session = auth.log_in(auth.register().email)
    auth.stub.Logout(pb.LogoutRequest(refresh_token=session.refresh_token))

    again = refresh(auth, session.refresh_token)

    assert again.error.reason == "REFRESH_TOKEN_INVALID"
    assert "REFRESH_TOKEN_REUSED" not in [e["action"] for e in auth.outbox()]


def test_a_rotated_token_keeps_its_family(auth: AuthService) -> None:
    first = auth.log_in(auth.register().email)
    second = refresh(auth, first.refresh_token).session
    refresh(auth, second.refresh_token)

    families = auth.sql("SELECT DISTINCT family_id FROM refresh_tokens")
    replaced = auth.sql("SELECT count(*) FROM refresh_tokens WHERE replaced_by_id IS NOT NULL")

    assert len(families) == 1
    assert replaced == [(2,)]
