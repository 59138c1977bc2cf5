"""Test support: real databases, a real in-process suite, registered accounts, a spy for audit."""

from __future__ import annotations

import datetime
import itertools
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1 import audit_service_pb2_grpc
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.auth.v1 import auth_service_pb2_grpc
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2_grpc

from services.audit.wiring import start as start_audit
from services.auth.wiring import start as start_auth
from services.embedded_pg import EmbeddedPostgres, require_reachable
from services.loans.wiring import start as start_loans
from services.shared._types import Metadata
from services.shared.db import database_url
from services.shared.ports import why_taken
from services.shared.server import Registration, Server, create_server
from services.shared.settings import Settings

BACKENDS = ["sqlite", "postgresql"]
PASSWORD = "correct horse battery"
SERVICE_SECRET = "test-service-secret"
LOANSUITE = str(Path(sys.executable).parent / "loansuite")  # the command this install provides

# Ports for the servers tests start, a range of its own for each worker of a parallel run
# (gw0, gw1, ...), below Linux's ephemeral range (32768-60999): no other worker, and no
# outgoing connection, is handed one of them by the kernel between the pick and the bind.
_PORT_RANGE = 2000
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_PORTS = itertools.cycle(range(20000 + _PORT_RANGE * _WORKER, 20000 + _PORT_RANGE * (_WORKER + 1)))


def free_port() -> int:
    """A port of this worker's range that nothing listens on now."""
    for _ in range(_PORT_RANGE):
        port = next(_PORTS)
        if why_taken("127.0.0.1", port) is None:
            return port
    raise RuntimeError("every port of this worker's range is taken")


class SessionPostgres:
    """The test session's PostgreSQL server: every PostgreSQL URL in the tests comes from here.

    LOANSUITE_TEST_PG (a libpq URL for a superuser's maintenance database) names a
    server to use, which must answer. Without it, the first test that needs
    PostgreSQL starts an embedded one in a temporary directory, and the session
    stops it at the end.
    """

    def __init__(self) -> None:
        self._admin_dsn = ""
        self._embedded: EmbeddedPostgres | None = None
        self._failure: Exception | None = None

    @property
    def admin_dsn(self) -> str:
        if self._failure is not None:  # said once; every later test fails fast the same way
            raise self._failure
        if not self._admin_dsn:
            try:
                self._admin_dsn = self._connect()
            except Exception as exc:
                self._failure = exc
                if self._embedded is not None:  # it never started: only its files remain
                    shutil.rmtree(self._embedded.directory, ignore_errors=True)
                    self._embedded = None
                raise
        return self._admin_dsn

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of one database on the session's server."""
        return database_url(self.admin_dsn, database)

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
            shutil.rmtree(self._embedded.directory, ignore_errors=True)
            self._embedded = None
            self._admin_dsn = ""

    def _connect(self) -> str:
        if configured := os.environ.get("LOANSUITE_TEST_PG"):
            return require_reachable(configured, "LOANSUITE_TEST_PG")
        self._embedded = EmbeddedPostgres(
            Path(tempfile.mkdtemp(prefix="loansuite-pg-")), durable=False
        )
        self._embedded.start()
        return self._embedded.admin_dsn


POSTGRES = SessionPostgres()


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
        with psycopg.connect(POSTGRES.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        self._created.append(database)
        return POSTGRES.url(database)

    def drop_all(self) -> None:
        if not self._created:
            return
        with psycopg.connect(POSTGRES.admin_dsn, autocommit=True) as conn:
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
    def metadata(self) -> Metadata:
        return bearer(self.access_token)


# The loans service's business date in the suite, unless a test moves it: after every
# quarter the tests report on (from 2027) has ended, and after the template loan starts.
SUITE_TODAY = datetime.date(2030, 1, 15)


@dataclass
class BusinessDate:
    """The loans service's today in a suite: fixed, and moved by the tests that need to."""

    day: datetime.date = SUITE_TODAY

    def __call__(self) -> datetime.date:
        return self.day


@dataclass
class Suite:
    """auth, audit and loans served in this process on free ports, over real databases."""

    backend: str
    settings: Settings
    ports: dict[str, int]
    channels: dict[str, grpc.Channel] = field(default_factory=dict)
    today: BusinessDate = field(default_factory=BusinessDate)

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
        return sign_up(
            self.auth, auth_pb.UserRole.Value(f"USER_ROLE_{role}"), organization=organization
        )


def bearer(token: str) -> Metadata:
    """Call metadata that presents token as the caller's bearer token."""
    return (("authorization", f"Bearer {token}"),)


def sign_up(
    auth: auth_service_pb2_grpc.AuthServiceStub,
    role: auth_pb.UserRole.ValueType = auth_pb.USER_ROLE_BORROWER,
    *,
    organization: str | None = None,
) -> Account:
    """Register a new user with a new organization, then log them in."""
    title = auth_pb.UserRole.Name(role).removeprefix("USER_ROLE_").title()
    email = f"{title.lower()}-{uuid.uuid4().hex[:10]}@example.com"
    registered = auth.Register(
        auth_pb.RegisterRequest(
            email=email,
            password=PASSWORD,
            name=f"Test {title}",
            role=role,
            organization_name=organization or f"{title} Org {uuid.uuid4().hex[:6]}",
        )
    )
    assert registered.HasField("user"), registered.error
    return log_in(auth, email)


def log_in(auth: auth_service_pb2_grpc.AuthServiceStub, email: str) -> Account:
    """Log a user in with the test password."""
    login = auth.Login(auth_pb.LoginRequest(email=email, password=PASSWORD))
    assert login.HasField("session"), login.error
    user = login.session.user
    return Account(email, user.id, user.organization.id, login.session.access_token)


def eventually(
    check: Callable[[], bool], what: str = "", *, timeout: float = 30.0, interval: float = 0.02
) -> None:
    """Poll until check() holds; fails only when it still does not after a generous timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or check}: still not so after {timeout}s")
        time.sleep(interval)


ServerModel = Literal["thread", "aio"]


def start_suite(
    backend: str, directory: Path, databases: Databases, server_model: ServerModel = "thread"
) -> tuple[Suite, list[Server]]:
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
        reporting_sweep_seconds=0,  # the tests that need a sweep run their own
        server_model=server_model,
    )
    today = BusinessDate()
    servers = [start_auth(settings), start_audit(settings), start_loans(settings, today=today)]
    return Suite(backend, settings, ports, today=today), servers[::-1]


class AuditSpy(audit_service_pb2_grpc.AuditServiceServicer):
    """Stands in for the audit service at the process boundary: acks, and remembers."""

    def __init__(self) -> None:
        self.events: list[audit_pb.AuditEvent] = []
        self.tokens: list[str] = []  # each stream's authorization metadata
        self.ended = 0  # streams whose client closed its requests
        self.refuse = False  # answer the next batch with an error, as audit does, and end

    @property
    def event_ids(self) -> list[str]:
        return [event.event_id for event in self.events]

    def IngestEvents(
        self,
        request_iterator: Iterator[audit_pb.IngestEventsRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[audit_pb.IngestEventsResponse]:
        token = dict(context.invocation_metadata()).get("authorization", "")
        self.tokens.append(token if isinstance(token, str) else token.decode())
        for request in request_iterator:
            if self.refuse:
                self.refuse = False
                error = error_pb2.Error(
                    code=error_pb2.ERROR_CODE_INVALID_ARGUMENT, reason="INVALID_EVENT"
                )
                yield audit_pb.IngestEventsResponse(error=error)
                return
            self.events.extend(request.events)
            ack = audit_pb.IngestAck(event_ids=[event.event_id for event in request.events])
            yield audit_pb.IngestEventsResponse(ack=ack)
        self.ended += 1

    # Only ingest is spied on; the rest answer as grpc's base class would.
    def ListAuditEvents(
        self, request: audit_pb.ListAuditEventsRequest, context: grpc.ServicerContext
    ) -> NoReturn:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")

    def VerifyChain(
        self, request: audit_pb.VerifyChainRequest, context: grpc.ServicerContext
    ) -> NoReturn:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")

    def TailAuditEvents(
        self, request: audit_pb.TailAuditEventsRequest, context: grpc.ServicerContext
    ) -> NoReturn:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")


def serve_spy(spy: AuditSpy, port: int = 0) -> Server:
    """A real gRPC server for the spy on 127.0.0.1:port (0: a free one)."""
    registration = Registration(
        name="loansuite.audit.v1.AuditService",
        add=lambda server: audit_service_pb2_grpc.add_AuditServiceServicer_to_server(spy, server),
    )
    return create_server([registration], f"127.0.0.1:{port}", max_workers=4)


def outbox_health(port: int, source: str) -> int:
    """The health status that the server on port reports for its outbox relay of source."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = health_pb2.HealthCheckRequest(service=f"loansuite.outbox.{source}")
        return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status)
