"""Audit test support: the two servers as one stack, its users, and events to send."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc

from services.auth.wiring import create_admin
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
