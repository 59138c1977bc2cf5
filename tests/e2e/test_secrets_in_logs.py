"""No configured or exchanged secret appears in any log line of the three processes.

The services run as real processes on PostgreSQL, each as a database role of
its own with a random password, with a service secret and a key-encryption
key, logging at DEBUG. A borrower and a lender register; a login with a wrong
password fails, the right one succeeds; a loan is created; the session is
refreshed and logged out. Once the processes have stopped, every line they
wrote (stdout and stderr) is searched for every secret of the run.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg
import pytest
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc
from loansuite.loans.v1 import loan_service_pb2_grpc as loans_grpc
from sqlalchemy.engine import make_url

from tests.e2e.support import SERVICES, Processes, loan_request
from tests.support import POSTGRES, bearer, free_port

pytestmark = pytest.mark.e2e


@dataclass
class Secrets:
    """Every secret of the run, by what it is."""

    values: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, value: str) -> str:
        assert len(value) >= 16, f"{name} is too short to search for unambiguously"
        self.values[name] = value
        if value.count(".") == 2:  # a JWT: its signature alone gives it away too
            self.values[f"{name} signature"] = value.rsplit(".", 1)[1]
        return value


@dataclass
class Roles:
    """PostgreSQL roles with passwords, each owning one database, dropped at the end."""

    names: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    def database_url(self, service: str, password: str) -> str:
        role = f"loansuite_{service}_{uuid.uuid4().hex[:8]}"
        database = f"{role}_db"
        with psycopg.connect(POSTGRES.admin_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
            self.names.append(role)
            conn.execute(f'CREATE DATABASE "{database}" OWNER "{role}"')
            self.databases.append(database)
        url = make_url(POSTGRES.url(database)).set(username=role, password=password)
        return url.render_as_string(hide_password=False)

    def drop(self) -> None:
        with psycopg.connect(POSTGRES.admin_dsn, autocommit=True) as conn:
            for database in self.databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            for role in self.names:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def run(tmp_path: Path) -> Iterator[tuple[Processes, Secrets]]:
    """The three services as processes, configured with secrets; stopped by the test."""
    found, roles = Secrets(), Roles()
    ports = {service: free_port() for service in SERVICES}
    env = {
        **os.environ,
        "LOANSUITE_DATA_DIR": str(tmp_path),
        "LOANSUITE_LOG_LEVEL": "DEBUG",
        "LOANSUITE_GRACE_SECONDS": "2",
        "LOANSUITE_SERVICE_SECRET": found.add("service secret", secrets.token_urlsafe(32)),
        "LOANSUITE_KEY_ENCRYPTION_KEY": found.add("key-encryption key", secrets.token_urlsafe(32)),
        **{f"LOANSUITE_{s.upper()}_PORT": str(p) for s, p in ports.items()},
    }
    for service in SERVICES:
        password = found.add(f"{service} database password", secrets.token_hex(16))
        env[f"LOANSUITE_{service.upper()}_DATABASE_URL"] = roles.database_url(service, password)
    processes = Processes(tmp_path, env, ports)
    try:
        processes.start_all()
        yield processes, found
    finally:
        processes.stop_all()
        roles.drop()


def _register(auth: auth_grpc.AuthServiceStub, role: str, found: Secrets) -> tuple[str, str]:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    password = found.add(f"{role}'s password", secrets.token_urlsafe(24))
    request = auth_pb.RegisterRequest(
        email=email,
        password=password,
        name=f"Secret {role.title()}",
        role=auth_pb.UserRole.Value(f"USER_ROLE_{role.upper()}"),
        organization_name=f"Secret {role.title()} Org",
    )
    registered = auth.Register(request)
    assert registered.HasField("user"), registered.error
    return email, password


def _log_in(auth: auth_grpc.AuthServiceStub, email: str, password: str) -> auth_pb.Session:
    login = auth.Login(auth_pb.LoginRequest(email=email, password=password))
    assert login.HasField("session"), login.error
    return login.session


def drive(processes: Processes, found: Secrets) -> None:
    """Register, fail and succeed to log in, create a loan, refresh, log out."""
    with (
        grpc.insecure_channel(f"127.0.0.1:{processes.ports['auth']}") as auth_channel,
        grpc.insecure_channel(f"127.0.0.1:{processes.ports['loans']}") as loans_channel,
    ):
        auth = auth_grpc.AuthServiceStub(auth_channel)
        email, password = _register(auth, "borrower", found)
        lender_session = _log_in(auth, *_register(auth, "lender", found))
        found.add("lender's access token", lender_session.access_token)
        wrong = found.add("a wrong password", secrets.token_urlsafe(24))
        refused = auth.Login(auth_pb.LoginRequest(email=email, password=wrong))
        assert refused.HasField("error"), refused
        session = _log_in(auth, email, password)
        found.add("access token", session.access_token)
        found.add("refresh token", session.refresh_token)
        loans = loans_grpc.LoanServiceStub(loans_channel)
        created = loans.CreateLoan(loan_request(), metadata=bearer(session.access_token))
        assert created.HasField("loan"), created.error
        request = auth_pb.RefreshSessionRequest(refresh_token=session.refresh_token)
        refreshed = auth.RefreshSession(request).session
        found.add("refreshed access token", refreshed.access_token)
        found.add("second refresh token", refreshed.refresh_token)
        logout = auth.Logout(auth_pb.LogoutRequest(refresh_token=refreshed.refresh_token))
        assert logout.HasField("logged_out"), logout.error


def test_no_secret_reaches_a_log_line(run: tuple[Processes, Secrets]) -> None:
    processes, found = run
    drive(processes, found)
    processes.stop_all()  # everything buffered is written at exit
    leaks = []
    for service in SERVICES:
        log = processes.log(service)
        # The start-up line names the database with its password masked: the URL was logged.
        assert "***@" in log, f"{service} logged no database URL:\n{log[:2000]}"
        for number, line in enumerate(log.splitlines(), 1):
            leaks += [
                f"{service}.log:{number}: {name}" for name, v in found.values.items() if v in line
            ]
    assert not leaks, "\n".join(leaks)
