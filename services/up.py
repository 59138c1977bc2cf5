"""`loansuite up`: auth, audit and loans as three processes, on SQLite or PostgreSQL.

On SQLite (the default) each service keeps a file in the data directory. With
`--database postgresql` and no database URL configured, an embedded PostgreSQL
runs under DATA_DIR/postgres with one database per service, kept between runs
and stopped with the suite. A configured PostgreSQL URL is used as it is, and
one that does not answer stops `up` with a one-line error before anything
starts. With `--tls DIR` every service listens with TLS only, demands client
certificates signed by DIR/ca.crt, and calls the others presenting its own
DIR/<service>.crt (as `loansuite certs init --out DIR` makes them).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from services.embedded_pg import EmbeddedPostgres, require_reachable
from services.shared.db import libpq_dsn
from services.shared.ports import why_taken
from services.shared.settings import ServiceName, Settings

__all__ = ["SERVICES", "CertificatesMissingError", "PortTakenError", "run_suite"]

SERVICES: tuple[ServiceName, ...] = ("auth", "audit", "loans")  # start order: loans last
EMBEDDED_DIRECTORY = "postgres"  # under the data directory


class PortTakenError(RuntimeError):
    """A service's port is held by another program."""


class CertificatesMissingError(RuntimeError):
    """`--tls DIR` names a directory without the CA or a service's certificate and key."""


def run_suite(settings: Settings, database: str, *, tls_dir: Path | None = None) -> int:
    """Run the three services until Ctrl-C or SIGTERM; returns the exit code."""
    tls_env = _tls_environments(tls_dir) if tls_dir is not None else {}
    if taken := _taken_ports(settings):
        raise PortTakenError(f"{taken} taken by another program; nothing was started")
    settings.resolved_service_secret()  # made once here, so all three share it
    with contextlib.ExitStack() as stack:
        urls, described = _databases(settings, database, stack)
        env = {
            "LOANSUITE_DATA_DIR": str(settings.data_dir.resolve()),
            # No balancer watches a local suite: Ctrl-C stops it at once unless told otherwise.
            "LOANSUITE_DRAIN_SECONDS": os.environ.get("LOANSUITE_DRAIN_SECONDS", "0"),
            **urls,
        }
        children = {
            name: subprocess.Popen(
                [sys.executable, "-m", "services.cli", "serve", name],
                env={**os.environ, **env, **tls_env.get(name, {})},
            )
            for name in SERVICES
        }
        print(_banner(settings, described, tls_dir), file=sys.stderr, flush=True)
        return _supervise(children)


def _databases(
    settings: Settings, database: str, stack: contextlib.ExitStack
) -> tuple[dict[str, str], str]:
    """The children's database URLs (configured ones checked, else embedded ones), described."""
    configured = {n: url for n in SERVICES if (url := getattr(settings, f"{n}_database_url"))}
    for name, url in configured.items():
        parsed = make_url(url)
        if parsed.get_backend_name() == "postgresql":
            require_reachable(libpq_dsn(parsed), f"LOANSUITE_{name.upper()}_DATABASE_URL")
    if configured:
        return {}, "the configured databases"
    if database != "postgresql":
        return {}, "SQLite files"
    server = stack.enter_context(EmbeddedPostgres(settings.data_dir / EMBEDDED_DIRECTORY))
    urls = {
        f"LOANSUITE_{name.upper()}_DATABASE_URL": server.ensure_database(f"loansuite_{name}")
        for name in SERVICES
    }
    return urls, f"embedded PostgreSQL on 127.0.0.1:{server.port}"


def _tls_environments(directory: Path) -> dict[ServiceName, dict[str, str]]:
    """Each service's LOANSUITE_TLS_* settings: its own certificate, the CA, clients required."""
    directory = directory.resolve()
    needed = ["ca.crt", *(f"{name}.{kind}" for name in SERVICES for kind in ("crt", "key"))]
    if missing := [name for name in needed if not (directory / name).is_file()]:
        raise CertificatesMissingError(
            f"{directory} lacks {', '.join(missing)}: make them with "
            f"`loansuite certs init --out {directory}`"
        )
    return {
        name: {
            "LOANSUITE_TLS_CERT_FILE": str(directory / f"{name}.crt"),
            "LOANSUITE_TLS_KEY_FILE": str(directory / f"{name}.key"),
            "LOANSUITE_TLS_CA_FILE": str(directory / "ca.crt"),
            "LOANSUITE_TLS_CLIENT_AUTH": "require",
        }
        for name in SERVICES
    }


def _banner(settings: Settings, database: str, tls_dir: Path | None) -> str:
    security = f"mTLS with the certificates in {tls_dir}" if tls_dir else "plaintext"
    return (
        f"loansuite: auth :{settings.auth_port}, loans :{settings.loans_port}, "
        f"audit :{settings.audit_port}; {database}; {security}; "
        f"data in {settings.data_dir.resolve()}; Ctrl-C stops"
    )


def _supervise(children: dict[ServiceName, subprocess.Popen[bytes]]) -> int:
    """Wait for a signal or a child's exit, then stop every child."""
    stop = _stop_children_on_signal()
    try:
        while all(c.poll() is None for c in children.values()) and not stop["requested"]:
            time.sleep(0.2)
    finally:
        died = {name: c.returncode for name, c in children.items() if c.returncode is not None}
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        codes = [child.wait() for child in children.values()]
    if stop["requested"]:
        return 0
    for name, code in died.items():
        print(f"loansuite: {name} exited with status {code}; stopped the others", file=sys.stderr)
    return max(abs(c) for c in codes) or 1


def _taken_ports(settings: Settings) -> str:
    """'port 50052 (loans)' for each service port another program holds, joined; else ''."""
    ports = {name: settings.port(name) for name in SERVICES}
    held = [
        f"port {port} ({name})" for name, port in ports.items() if why_taken(settings.host, port)
    ]
    return ", ".join(held)


def _stop_children_on_signal() -> dict[str, bool]:
    state = {"requested": False}

    def request(*_: object) -> None:
        state["requested"] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, request)
    return state
