"""Private files whatever the umask: the data directory 0700, databases, heads and secrets 0600."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from services.audit.chain import Head
from services.audit.heads import HeadsFile
from services.shared.db import Database
from services.shared.files import UnsafePermissionsError, private_directory, write_private_once
from services.shared.settings import Settings

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def permissive_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """A umask that would leave new files readable (022) or writable (000) by everyone."""
    previous = os.umask(int(request.param))
    try:
        yield int(request.param)
    finally:
        os.umask(previous)


def test_a_sqlite_database_and_its_wal_and_shm_are_private(
    tmp_path: Path, permissive_umask: int
) -> None:
    path = tmp_path / "data" / "loans.db"
    db = Database(f"sqlite:///{path}")
    try:
        with db.write() as session:
            session.execute(text("CREATE TABLE t (x INTEGER)"))
            session.execute(text("INSERT INTO t VALUES (1)"))
        with db.read() as session:  # the -shm file exists while a connection is open
            assert session.execute(text("SELECT x FROM t")).scalar() == 1
            files = [path, path.with_name("loans.db-wal"), path.with_name("loans.db-shm")]
            assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    finally:
        db.dispose()
    assert mode(path.parent) == 0o700


def test_looser_files_are_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "auth.db"
    for name in ("auth.db", "auth.db-wal"):
        (tmp_path / name).touch()
        (tmp_path / name).chmod(0o644)
    tmp_path.chmod(0o744)  # readable (listable) by everyone

    with caplog.at_level(logging.WARNING, logger="loansuite.files"):
        Database(f"sqlite:///{path}").dispose()

    assert (mode(tmp_path), mode(path), mode(tmp_path / "auth.db-wal")) == (0o700, 0o600, 0o600)
    tightened = [r for r in caplog.records if r.getMessage().startswith("permissions tightened: ")]
    assert {r.__dict__["path"] for r in tightened} == {
        str(tmp_path),
        str(path),
        str(tmp_path / "auth.db-wal"),
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_loose_file_of_another_user_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "auth.db"
    path.touch()
    path.chmod(0o644)
    os.chown(path, NOBODY, NOBODY)

    with pytest.raises(UnsafePermissionsError) as refused:
        Database(f"sqlite:///{path}")

    message = str(refused.value)
    assert "\n" not in message
    assert str(path) in message
    assert "0644" in message
    assert f"uid {NOBODY}" in message
    assert mode(path) == 0o644  # not touched


def test_a_shared_sticky_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)

    with pytest.raises(UnsafePermissionsError, match="shared directory"):
        private_directory(shared)


def test_a_traversable_directory_keeps_its_traverse_bit(tmp_path: Path) -> None:
    # The embedded PostgreSQL's system user passes through the data directory.
    directory = tmp_path / "var"
    directory.mkdir()
    directory.chmod(0o755)

    private_directory(directory)

    assert mode(directory) == 0o711


def test_the_service_secret_is_private(tmp_path: Path, permissive_umask: int) -> None:
    settings = Settings(data_dir=tmp_path / "var")

    secret = settings.resolved_service_secret()

    assert secret
    assert settings.resolved_service_secret() == secret
    assert mode(tmp_path / "var") == 0o700
    assert mode(tmp_path / "var" / "service-secret") == 0o600
    assert not [p for p in (tmp_path / "var").iterdir() if p.name.startswith(".")]


def test_write_private_once_keeps_the_first_content(tmp_path: Path) -> None:
    first = write_private_once(tmp_path / "secret", b"one")
    second = write_private_once(tmp_path / "secret", b"two")

    assert (first, second) == (b"one", b"one")


def test_the_heads_file_is_private(tmp_path: Path, permissive_umask: int) -> None:
    heads = HeadsFile(tmp_path / "var" / "audit-heads.jsonl")

    heads.publish(Head(1, "a" * 64))

    assert heads.last() == Head(1, "a" * 64)
    assert mode(tmp_path / "var" / "audit-heads.jsonl") == 0o600
    assert mode(tmp_path / "var") == 0o700


def test_a_looser_heads_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "audit-heads.jsonl"
    path.write_text("")
    path.chmod(0o666)

    HeadsFile(path)

    assert mode(path) == 0o600
