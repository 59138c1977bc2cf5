"""Audit test support: the two servers as one stack, their settings, and events to send."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict, Unpack

from google.protobuf.timestamp_pb2 import Timestamp
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc

from services.auth.wiring import create_admin
from services.shared._types import Metadata
from services.shared.settings import Settings
from tests.support import (
    PASSWORD,
    SERVICE_SECRET,
    Account,
    ServerModel,
    bearer,
    log_in,
    sign_up,
)


class Filters(TypedDict, total=False):
    """The fields of an AuditEventFilter, for keyword arguments."""

    resource_type: str
    resource_id: str
    actor_user_id: str
    action: str
    occur_time_from: Timestamp
    occur_time_to: Timestamp
    organization_id: str


def audit_settings(
    data_dir: Path, database_url: str, auth_port: int, server_model: ServerModel = "thread"
) -> Settings:
    """Audit on database_url, verifying tokens with the auth server on auth_port."""
    return Settings(
        data_dir=data_dir,
        audit_database_url=database_url,
        auth_target=f"127.0.0.1:{auth_port}",
        service_secret=SERVICE_SECRET,
        host="127.0.0.1",
        server_model=server_model,
    )


@dataclass
class Stack:
    """Both servers, their settings and client stubs."""

    auth_settings: Settings
    audit_settings: Settings
    auth: auth_grpc.AuthServiceStub
    audit: audit_grpc.AuditServiceStub

    def service_metadata(self, service_name: str = "loans") -> Metadata:
        return service_metadata(self.auth, service_name)

    def user(self, role: auth_pb.UserRole.ValueType = auth_pb.USER_ROLE_BORROWER) -> Account:
        return sign_up(self.auth, role)

    def admin(self) -> Account:
        email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        create_admin(self.auth_settings, email=email, password=PASSWORD, name="Admin")
        return log_in(self.auth, email)

    def ingest(
        self, *batches: list[audit_pb.AuditEvent], metadata: Metadata | None = None
    ) -> list[audit_pb.IngestEventsResponse]:
        requests = [audit_pb.IngestEventsRequest(events=batch) for batch in batches]
        call = self.audit.IngestEvents(
            iter(requests), metadata=metadata or self.service_metadata(), timeout=30
        )
        return list(call)

    def list_events(
        self, user: Account, page_size: int = 0, page_token: str = "", **filters: Unpack[Filters]
    ) -> audit_pb.ListAuditEventsResponse:
        return self.audit.ListAuditEvents(
            audit_pb.ListAuditEventsRequest(
                page_size=page_size,
                page_token=page_token,
                filter=audit_pb.AuditEventFilter(**filters),
            ),
            metadata=user.metadata,
        )

    def all_events(self, user: Account, **filters: Unpack[Filters]) -> list[audit_pb.AuditEvent]:
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


def service_metadata(auth: auth_grpc.AuthServiceStub, service_name: str = "loans") -> Metadata:
    """A service identity's bearer token, issued by auth for the shared secret."""
    response = auth.IssueServiceToken(
        auth_pb.IssueServiceTokenRequest(service_name=service_name, service_secret=SERVICE_SECRET)
    )
    assert response.HasField("token"), response.error
    return bearer(response.token.access_token)


def acked_ids(responses: list[audit_pb.IngestEventsResponse]) -> list[list[str]]:
    """The event ids each response acknowledged; fails on an error envelope."""
    for response in responses:
        assert response.HasField("ack"), response.error
    return [list(response.ack.event_ids) for response in responses]


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
