"""The embedded PostgreSQL: private, password-protected, loopback only, kept between runs."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from services.embedded_pg import EmbeddedPostgres, PostgresUnreachableError, require_reachable
from services.shared.db import libpq_dsn
from tests.support import SessionPostgres, free_port


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedPostgres]:
    directory = Path(tempfile.mkdtemp(prefix="loansuite-embedded-test-"))
    with EmbeddedPostgres(directory) as running:
        yield running
    shutil.rmtree(directory)


def test_it_answers_only_with_its_password_on_loopback(server: EmbeddedPostgres) -> None:
    url = make_url(server.admin_dsn)
    assert (url.host, url.username) == ("127.0.0.1", "postgres")
    assert url.password
    assert len(url.password) >= 24

    with psycopg.connect(server.admin_dsn) as conn:
        listen, sockets, method = conn.execute(
            "SELECT current_setting('listen_addresses'),"
            " current_setting('unix_socket_directories'), current_setting('password_encryption')"
        ).fetchone() or ("", "", "")
    assert (listen, sockets, method) == ("127.0.0.1", "", "scram-sha-256")

    without = f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
    wrong = url.set(password="not-the-password").render_as_string(hide_password=False)
    for dsn in (without, wrong):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(dsn, connect_timeout=5)


def test_its_files_are_private(server: EmbeddedPostgres) -> None:
    data = server.directory / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((server.directory / "password").stat().st_mode) == 0o600
    # Listable by nobody but its owner; run as root, others may only pass through it.
    assert stat.S_IMODE(server.directory.stat().st_mode) & 0o066 == 0
    if os.geteuid() == 0:
        assert data.stat().st_uid != 0  # PostgreSQL runs as its own system user


def test_databases_and_password_survive_a_restart(tmp_path: Path) -> None:
    directory = tmp_path / "postgres"  # made by the server, as under a data directory
    with EmbeddedPostgres(directory) as first:
        url = first.ensure_database("kept")
        assert first.ensure_database("kept") == url  # a second call finds it
        with psycopg.connect(libpq_dsn(url), autocommit=True) as conn:
            conn.execute("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept')")
        password = make_url(url).password

    with EmbeddedPostgres(directory) as second:
        again = second.ensure_database("kept")
        with psycopg.connect(libpq_dsn(again)) as conn:
            assert conn.execute("SELECT body FROM notes").fetchall() == [("kept",)]
    assert make_url(again).password == password
    assert not (directory / "data" / "postmaster.pid").exists()  # stopped


def test_a_configured_server_that_does_not_answer_is_one_clear_line() -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"

    with pytest.raises(PostgresUnreachableError) as raised:
        require_reachable(dsn, "LOANSUITE_TEST_PG")

    message = str(raised.value)
    assert message.startswith("LOANSUITE_TEST_PG names a PostgreSQL server that does not answer")
    assert "\n" not in message


def test_the_tests_never_fall_back_from_a_configured_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOANSUITE_TEST_PG", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    session = SessionPostgres()

    with pytest.raises(PostgresUnreachableError, match="LOANSUITE_TEST_PG") as first:
        _ = session.admin_dsn
    with pytest.raises(PostgresUnreachableError) as again:  # every later test, at once
        _ = session.admin_dsn
    assert again.value is first.value
