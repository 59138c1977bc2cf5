"""`loansuite auth rotate-keys`: new tokens get the new kid, old ones verify until they expire."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from loansuite.auth.v1 import auth_service_pb2 as pb
from sqlalchemy import select

from services import cli
from services.auth import use_cases
from services.auth.key_encryption import load_key_encryption_key
from services.auth.models import SigningKey
from services.auth.signing_keys import rotate_signing_key
from services.auth.wiring import rotate_keys
from services.shared.db import Database
from services.shared.settings import Settings
from tests.auth.support import AuthService, running
from tests.support import bearer, eventually

TTL = timedelta(minutes=15)


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def test_rotation_signs_with_a_new_kid_and_old_tokens_still_verify(
    auth: AuthService, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    user = auth.register()
    before = auth.log_in(user.email)
    monkeypatch.setenv("LOANSUITE_AUTH_DATABASE_URL", auth.settings.database_url("auth"))

    exit_code = cli.main(["auth", "rotate-keys", "--data-dir", str(auth.settings.data_dir)])

    printed = json.loads(capsys.readouterr().out)
    assert exit_code == 0
    assert printed["retired_kid"] == kid_of(before.access_token)
    assert printed["kid"] != printed["retired_kid"]
    # The running server looks for a newer key every few seconds: no restart needed.
    eventually(lambda: kid_of(auth.log_in(user.email).access_token) == printed["kid"], timeout=30)
    after = auth.log_in(user.email)
    old = auth.stub.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(before.access_token))
    new = auth.stub.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(after.access_token))
    keys = auth.stub.ListPublicKeys(pb.ListPublicKeysRequest()).key_set.keys
    assert (old.user.id, new.user.id) == (user.id, user.id)
    assert [key.kid for key in keys] == [printed["retired_kid"], printed["kid"]]


def test_a_restart_signs_with_the_rotated_key(fresh_settings: Settings) -> None:
    with running(fresh_settings) as auth:
        user = auth.register()
    rotation = rotate_keys(fresh_settings)

    with running(fresh_settings) as auth:
        session = auth.log_in(user.email)

    assert kid_of(session.access_token) == rotation.kid
    assert rotation.generation == 2


def test_a_retired_key_is_published_until_its_tokens_have_expired(
    fresh_settings: Settings,
) -> None:
    kek = load_key_encryption_key("", fresh_settings.data_dir)
    db = Database(fresh_settings.database_url("auth"))
    try:
        with running(fresh_settings):
            pass  # migrated, with its first key
        rotated_at = datetime.now(UTC)
        rotation = rotate_signing_key(db, kek, keep_for=TTL, now=rotated_at)
        with db.read() as session:
            soon = use_cases.list_public_keys(session, keep_for=TTL, now=rotated_at + TTL)
            later = use_cases.list_public_keys(
                session, keep_for=TTL, now=rotated_at + TTL + timedelta(minutes=5)
            )
    finally:
        db.dispose()

    assert [key.kid for key in soon] == [rotation.retired_kid, rotation.kid]
    assert [key.kid for key in later] == [rotation.kid]


def test_rotating_deletes_keys_retired_longer_than_a_token_lives(
    fresh_settings: Settings,
) -> None:
    kek = load_key_encryption_key("", fresh_settings.data_dir)
    db = Database(fresh_settings.database_url("auth"))
    try:
        with running(fresh_settings):
            pass
        start = datetime.now(UTC)
        first = rotate_signing_key(db, kek, keep_for=TTL, now=start)
        second = rotate_signing_key(db, kek, keep_for=TTL, now=start + timedelta(minutes=1))
        third = rotate_signing_key(db, kek, keep_for=TTL, now=start + timedelta(hours=1))
        with db.read() as session:
            kept = session.scalars(select(SigningKey.kid).order_by(SigningKey.generation)).all()
    finally:
        db.dispose()

    # The original key and the first rotation's retired at start and start + 1 min: gone.
    assert first.retired_kid not in kept
    assert kept == [second.kid, third.kid]
