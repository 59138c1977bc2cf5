"""Signing keys at rest: sealed under the key-encryption key, never stored in plaintext."""

from __future__ import annotations

import os
import secrets
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from loansuite.auth.v1 import auth_service_pb2 as pb
from sqlalchemy import make_url, text

from services.auth.key_encryption import (
    KEK_FILE_NAME,
    KeyEncryptionKey,
    KeyEncryptionKeyError,
    load_key_encryption_key,
)
from services.auth.tokens import generate_key_material
from services.auth.wiring import MIGRATIONS
from services.shared.db import Database
from services.shared.settings import Settings
from tests.auth.support import AuthService, auth_settings, running
from tests.support import bearer

PLAINTEXT_MARK = b"PRIVATE KEY"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def row_bytes(auth: AuthService) -> list[bytes]:
    """Every value of every signing_keys row, as bytes: what a reader of the table gets."""
    rows = auth.sql("SELECT * FROM signing_keys")
    return [str(value).encode() for row in rows for value in row]


def sqlite_file_bytes(settings: Settings) -> bytes:
    """The SQLite database and its write-ahead log, raw: freed pages included."""
    path = Path(make_url(settings.database_url("auth")).database or "")
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_no_private_key_is_stored_in_plaintext(auth: AuthService) -> None:
    auth.log_in(auth.register().email)

    values = row_bytes(auth)

    assert values
    assert not [value for value in values if PLAINTEXT_MARK in value]
    (sealed,) = auth.sql("SELECT sealed_private_key FROM signing_keys")
    assert str(sealed[0]).startswith("aes256gcm:")


def test_a_fresh_data_directory_is_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "var"
    previous = os.umask(0)
    try:
        settings = auth_settings(data, "")  # the auth database as a SQLite file in data
        with running(settings) as auth:
            auth.log_in(auth.register().email)
            names = ["auth.db", "auth.db-wal", "auth.db-shm", KEK_FILE_NAME, "service-secret"]
            modes = {name: mode(data / name) for name in names}
    finally:
        os.umask(previous)

    assert mode(data) == 0o700
    assert modes == dict.fromkeys(names, 0o600)
    assert PLAINTEXT_MARK not in sqlite_file_bytes(settings)


def test_the_configured_key_encryption_key_is_used_and_required(
    fresh_settings: Settings,
) -> None:
    kek = secrets.token_urlsafe(32)
    settings = fresh_settings.model_copy(update={"key_encryption_key": kek})
    with running(settings) as auth:
        auth.register()
    (kid, sealed), *_ = auth.sql("SELECT kid, sealed_private_key FROM signing_keys")
    assert not (settings.data_dir / KEK_FILE_NAME).exists()
    assert "PRIVATE KEY" in load_key_encryption_key(kek, settings.data_dir).unseal(
        str(kid), str(sealed)
    )

    other = settings.model_copy(update={"key_encryption_key": secrets.token_urlsafe(32)})
    with pytest.raises(KeyEncryptionKeyError) as refused, running(other):
        pass
    assert "\n" not in str(refused.value)
    assert "LOANSUITE_KEY_ENCRYPTION_KEY" in str(refused.value)


# Named, not shown: every worker of a parallel run must collect the same test ids.
@pytest.mark.parametrize(
    "value",
    [
        "short",
        "x" * 43 + "!",
        pytest.param(secrets.token_urlsafe(31), id="31-random-bytes"),
    ],
)
def test_a_malformed_key_encryption_key_is_a_one_line_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(KeyEncryptionKeyError) as refused:
        load_key_encryption_key(value, tmp_path)

    assert str(refused.value) == (
        "LOANSUITE_KEY_ENCRYPTION_KEY must be 32 bytes in base64url "
        "(43 characters, as secrets.token_urlsafe(32) makes)"
    )


def test_a_sealed_key_opens_only_under_its_own_kid() -> None:
    kek = KeyEncryptionKey(secrets.token_bytes(32))
    material = generate_key_material()
    sealed = kek.seal(material.kid, material.private_key_pem)

    assert kek.unseal(material.kid, sealed) == material.private_key_pem
    with pytest.raises(KeyEncryptionKeyError):
        kek.unseal("another-kid", sealed)  # moved to another row
    with pytest.raises(KeyEncryptionKeyError):
        kek.unseal(material.kid, sealed[:-4] + ("AAAA" if sealed[-4:] != "AAAA" else "BBBB"))


def test_a_plaintext_key_from_before_sealing_is_sealed_at_start(fresh_settings: Settings) -> None:
    material = generate_key_material()
    _database_at_revision_0001_with_key(fresh_settings, material.kid, material.private_key_pem)

    with running(fresh_settings) as auth:
        user = auth.register()
        session = auth.log_in(user.email)
        whoami = auth.stub.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(session.access_token))
        keys = auth.stub.ListPublicKeys(pb.ListPublicKeysRequest()).key_set.keys

    assert [key.kid for key in keys] == [material.kid]  # the same key, now sealed
    assert whoami.user.id == user.id
    assert not [value for value in row_bytes(auth) if PLAINTEXT_MARK in value]
    if make_url(fresh_settings.database_url("auth")).get_backend_name() == "sqlite":
        assert PLAINTEXT_MARK not in sqlite_file_bytes(fresh_settings)  # no freed page keeps it


def _database_at_revision_0001_with_key(settings: Settings, kid: str, pem: str) -> None:
    db = Database(settings.database_url("auth"))
    try:
        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            connection.execute(
                text(
                    "INSERT INTO signing_keys (kid, generation, algorithm, private_key_pem,"
                    " public_key_pem, create_time) VALUES (:kid, 1, 'EdDSA', :pem, :public, :now)"
                ),
                {"kid": kid, "pem": pem, "public": _public_pem(pem), "now": datetime.now(UTC)},
            )
    finally:
        db.dispose()


def _public_pem(private_pem: str) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem.encode(), None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
