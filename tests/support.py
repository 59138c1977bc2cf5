"""Test support: real databases, a real in-process suite, registered accounts."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import psycopg
from loansuite.audit.v1 import audit_service_pb2_grpc
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.auth.v1 import auth_service_pb2_grpc
from loansuite.loans.v1 import loan_service_pb2_grpc

from services.audit.wiring import start as start_audit
from services.auth.wiring import start as start_auth
from services.loans.wiring import start as start_loans
from services.shared.server import Server
from services.shared.settings import Settings

# The PostgreSQL server on this machine; tests create their own databases and drop them.
PG_ADMIN_DSN = os.environ.get("LOANSUITE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]
PASSWORD = "correct horse battery"
SERVICE_SECRET = "test-service-secret"


class Databases:
    """Creates empty databases on one backend and drops them at the end."""

    def __init__(self, backend: str, directory: Path) -> None:
        self.backend = backend
        self._directory = directory
        self._created: list[str] = []

    def new(self, name: str) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self._directory / f'{name}-{uuid.uuid4().hex[:8]}.db'}"
        database = f"loansuite_test_{name}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        self._created.append(database)
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"

    def drop_all(self) -> None:
        if not self._created:
            return
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            for database in self._created:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@dataclass
class Account:
    """A registered, logged-in user."""

    email: str
    user_id: str
    organization_id: str
    access_token: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.access_token}"),)


@dataclass
class Suite:
    """auth, audit and loans served in this process on free ports, over real databases."""

    backend: str
    settings: Settings
    ports: dict[str, int]
    channels: dict[str, grpc.Channel] = field(default_factory=dict)

    def channel(self, service: str) -> grpc.Channel:
        if service not in self.channels:
            self.channels[service] = grpc.insecure_channel(f"127.0.0.1:{self.ports[service]}")
        return self.channels[service]

    @property
    def auth(self) -> auth_service_pb2_grpc.AuthServiceStub:
        return auth_service_pb2_grpc.AuthServiceStub(self.channel("auth"))

    @property
    def loans(self) -> loan_service_pb2_grpc.LoanServiceStub:
        return loan_service_pb2_grpc.LoanServiceStub(self.channel("loans"))

    @property
    def audit(self) -> audit_service_pb2_grpc.AuditServiceStub:
        return audit_service_pb2_grpc.AuditServiceStub(self.channel("audit"))

    def register(self, role: str = "BORROWER", organization: str | None = None) -> Account:
        email = f"{role.lower()}-{uuid.uuid4().hex[:10]}@example.com"
        registered = self.auth.Register(
            auth_pb.RegisterRequest(
                email=email,
                password=PASSWORD,
                name=f"Test {role.title()}",
                role=auth_pb.UserRole.Value(f"USER_ROLE_{role}"),
                organization_name=organization or f"{role.title()} Org {uuid.uuid4().hex[:6]}",
            )
        )
        assert registered.HasField("user"), registered.error
        login = self.auth.Login(auth_pb.LoginRequest(email=email, password=PASSWORD))
        assert login.HasField("session"), login.error
        user = login.session.user
        return Account(email, user.id, user.organization.id, login.session.access_token)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_suite(backend: str, directory: Path, databases: Databases) -> tuple[Suite, list[Server]]:
    """Start auth, audit and loans, each knowing where the others listen."""
    ports = {service: free_port() for service in ("auth", "audit", "loans")}
    settings = Settings(
        data_dir=directory,
        host="127.0.0.1",
        service_secret=SERVICE_SECRET,
        auth_database_url=databases.new("auth"),
        audit_database_url=databases.new("audit"),
        loans_database_url=databases.new("loans"),
        user_cache_ttl_seconds=1.0,
        auth_port=ports["auth"],
        audit_port=ports["audit"],
        loans_port=ports["loans"],
    )
    servers = [start_auth(settings), start_audit(settings), start_loans(settings)]
    return Suite(backend, settings, ports), servers[::-1]
