"""A real auth server and a real audit server on port 0, per test and backend."""

from __future__ import annotations

import gc
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc

from services.audit.wiring import start as start_audit
from services.auth.wiring import create_admin
from services.auth.wiring import start as start_auth
from services.shared.server import Server
from services.shared.settings import Settings

SECRET = "test-secret"
PASSWORD = "correct horse battery staple"
NOWHERE = "127.0.0.1:1"

Metadata = tuple[tuple[str, str], ...]


@dataclass
class User:
    id: str
    organization_id: str
    token: str

    @property
    def metadata(self) -> Metadata:
        return bearer(self.token)


@dataclass
class Stack:
    """Both servers, their settings and client stubs."""

    auth_settings: Settings
    audit_settings: Settings
    auth: auth_grpc.AuthServiceStub
    audit: audit_grpc.AuditServiceStub
    _users: int = field(default=0)

    def service_metadata(self, service_name: str = "loans") -> Metadata:
        response = self.auth.IssueServiceToken(
            auth_pb.IssueServiceTokenRequest(service_name=service_name, service_secret=SECRET)
        )
        assert response.HasField("token"), response.error
        return bearer(response.token.access_token)

    def user(self, role: auth_pb.UserRole.ValueType = auth_pb.USER_ROLE_BORROWER) -> User:
        self._users += 1
        email = f"user{self._users}@example.com"
        registered = self.auth.Register(
            auth_pb.RegisterRequest(
                email=email,
                password=PASSWORD,
                name=f"User {self._users}",
                role=role,
                organization_name=f"Organization {self._users}",
            )
        )
        assert registered.HasField("user"), registered.error
        return self._login(email)

    def admin(self) -> User:
        email = "admin@example.com"
        create_admin(self.auth_settings, email=email, password=PASSWORD, name="Admin")
        return self._login(email)

    def _login(self, email: str) -> User:
        response = self.auth.Login(auth_pb.LoginRequest(email=email, password=PASSWORD))
        assert response.HasField("session"), response.error
        session = response.session
        return User(session.user.id, session.user.organization.id, session.access_token)

    def ingest(
        self, *batches: list[audit_pb.AuditEvent], metadata: Metadata | None = None
    ) -> list[audit_pb.IngestEventsResponse]:
        requests = [audit_pb.IngestEventsRequest(events=batch) for batch in batches]
        call = self.audit.IngestEvents(
            iter(requests), metadata=metadata or self.service_metadata(), timeout=30
        )
        return list(call)

    def list_events(
        self, user: User, page_size: int = 0, page_token: str = "", **filters: object
    ) -> audit_pb.ListAuditEventsResponse:
        return self.audit.ListAuditEvents(
            audit_pb.ListAuditEventsRequest(
                page_size=page_size,
                page_token=page_token,
                filter=audit_pb.AuditEventFilter(**filters),
            ),
            metadata=user.metadata,
        )

    def all_events(self, user: User, **filters: object) -> list[audit_pb.AuditEvent]:
        """Every page of a listing; fails on an error envelope."""
        events: list[audit_pb.AuditEvent] = []
        token = ""
        while True:
            response = self.list_events(user, page_size=500, page_token=token, **filters)
            assert response.HasField("page"), response.error
            events += response.page.events
            token = response.page.next_page_token
            if not token:
                return events


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def make_event(
    *organization_ids: str,
    event_id: str | None = None,
    action: str = "LOAN_CREATED",
    resource_type: str = "loan",
    resource_id: str = "loan-1",
    actor_user_id: str = "user-1",
    occur_time: datetime | None = None,
) -> audit_pb.AuditEvent:
    return audit_pb.AuditEvent(
        event_id=event_id or str(uuid.uuid4()),
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        actor=audit_pb.Actor(
            user_id=actor_user_id, organization_id="org-of-actor", role="USER_ROLE_BORROWER"
        ),
        organization_ids=list(organization_ids),
        request_id="req-1",
        occur_time=timestamp(occur_time or datetime.now(UTC)),
        changes=[audit_pb.FieldChange(field="name", old_value="null", new_value='"Green"')],
        source="loans",
    )


@pytest.fixture
def audit_url(new_database_url: Callable[[str], str]) -> str:
    return new_database_url("audit")


@pytest.fixture
def server_model() -> str:
    """The audit server's grpcio model; a test parametrizes it to try the other."""
    return "thread"


@pytest.fixture
def stack(
    new_database_url: Callable[[str], str], audit_url: str, server_model: str, tmp_path: Path
) -> Iterator[Stack]:
    auth_settings = Settings(
        data_dir=tmp_path,
        auth_database_url=new_database_url("auth"),
        # Auth relays its own events (registrations, logins) to audit; nothing
        # listens here, so they stay out of the logs these tests inspect.
        audit_target=NOWHERE,
        service_secret=SECRET,
        host="127.0.0.1",
    )
    auth_server = start_auth(auth_settings, port=0)
    audit_settings = Settings(
        data_dir=tmp_path,
        auth_database_url=auth_settings.auth_database_url,
        audit_database_url=audit_url,
        auth_target=f"127.0.0.1:{auth_server.port}",
        service_secret=SECRET,
        host="127.0.0.1",
        server_model=server_model,
    )
    audit_server = start_audit(audit_settings, port=0)
    auth_channel = grpc.insecure_channel(f"127.0.0.1:{auth_server.port}")
    audit_channel = grpc.insecure_channel(f"127.0.0.1:{audit_server.port}")
    yield Stack(
        auth_settings,
        audit_settings,
        auth_grpc.AuthServiceStub(auth_channel),
        audit_grpc.AuditServiceStub(audit_channel),
    )
    audit_channel.close()
    auth_channel.close()
    audit_server.stop(0)
    auth_server.stop(0)
    if server_model == "aio":
        _collect_aio_loop(audit_server)


def _collect_aio_loop(server: Server) -> None:
    # services/shared/server.py's aio engine stops its event loop but never
    # closes it; the loop's ResourceWarning would otherwise fail a later test.
    del server
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
