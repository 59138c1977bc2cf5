"""Who delivers events: loans and auth, each its own source; with mTLS, by certificate too."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc
from loansuite.common.v1 import error_pb2

from services.audit.wiring import start as start_audit
from services.auth.wiring import start as start_auth
from services.shared._types import Metadata
from services.shared.server import Server
from tests.audit.support import Stack, acked_ids, make_event, service_metadata
from tests.support import SERVICE_SECRET, Account, sign_up
from tests.tls_support import client_credentials, make_certificates, tls_settings


def _event(organization_id: str, source: str) -> audit_pb.AuditEvent:
    event = make_event(organization_id)
    event.source = source
    return event


def _refusal(responses: list[audit_pb.IngestEventsResponse]) -> error_pb2.Error:
    assert len(responses) == 1, "a refused stream ends with its one error"
    assert responses[0].HasField("error"), responses[0]
    assert responses[0].error.code == error_pb2.ERROR_CODE_PERMISSION_DENIED
    return responses[0].error


def test_a_service_cannot_deliver_another_services_events_and_nothing_is_stored(
    stack: Stack,
) -> None:
    reader = stack.user()
    own, foreign = _event(reader.organization_id, "loans"), _event(reader.organization_id, "auth")

    error = _refusal(stack.ingest([own, foreign], metadata=stack.service_metadata("loans")))

    assert error.reason == "EVENT_SOURCE_NOT_CALLER"
    assert [v.field for v in error.field_violations] == ["events[1].source"]
    assert stack.all_events(reader) == []


def test_each_producer_delivers_its_own_source(stack: Stack) -> None:
    reader = stack.user()
    by_auth = _event(reader.organization_id, "auth")
    by_loans = _event(reader.organization_id, "loans")

    acked = acked_ids(stack.ingest([by_auth], metadata=stack.service_metadata("auth")))
    acked += acked_ids(stack.ingest([by_loans], metadata=stack.service_metadata("loans")))

    assert acked == [[by_auth.event_id], [by_loans.event_id]]
    assert [e.source for e in stack.all_events(reader)] == ["auth", "loans"]


def test_a_service_that_produces_no_events_delivers_none(stack: Stack) -> None:
    reader = stack.user()

    responses = stack.ingest(
        [_event(reader.organization_id, "audit")], metadata=stack.service_metadata("audit")
    )

    assert _refusal(responses).reason == "SERVICE_NOT_PRODUCER"
    assert stack.all_events(reader) == []


@dataclass
class MutualTls:
    """auth and audit serving with mTLS, each with its own certificate, and how to reach them."""

    certificates: Path
    auth_port: int
    audit_port: int

    def channel(self, service: str, holder: str) -> grpc.Channel:
        port = self.auth_port if service == "auth" else self.audit_port
        return grpc.secure_channel(
            f"127.0.0.1:{port}", client_credentials(self.certificates, holder)
        )

    def service_token(self, service_name: str) -> Metadata:
        with self.channel("auth", "operator") as channel:
            return service_metadata(auth_grpc.AuthServiceStub(channel), service_name)

    def reader(self) -> Account:
        with self.channel("auth", "operator") as channel:
            return sign_up(auth_grpc.AuthServiceStub(channel))

    def ingest(
        self, holder: str, metadata: Metadata, events: list[audit_pb.AuditEvent]
    ) -> list[audit_pb.IngestEventsResponse]:
        """One batch over a channel that presents holder's certificate."""
        with self.channel("audit", holder) as channel:
            call = audit_grpc.AuditServiceStub(channel).IngestEvents(
                iter([audit_pb.IngestEventsRequest(events=events)]), metadata=metadata, timeout=30
            )
            return list(call)


@pytest.fixture(scope="module")
def mutual_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MutualTls]:
    directory = tmp_path_factory.mktemp("mtls")
    certificates = make_certificates(directory / "certs")
    common = {"data_dir": directory, "host": "127.0.0.1", "service_secret": SERVICE_SECRET}
    auth = tls_settings(
        certificates,
        "auth",
        auth_database_url=f"sqlite:///{directory / 'auth.db'}",
        audit_target="127.0.0.1:1",  # auth's own events stay in its outbox
        **common,
    )
    servers: list[Server] = [start_auth(auth, port=0)]
    audit = tls_settings(
        certificates,
        "audit",
        audit_database_url=f"sqlite:///{directory / 'audit.db'}",
        auth_target=f"127.0.0.1:{servers[0].port}",
        **common,
    )
    servers.append(start_audit(audit, port=0))
    try:
        yield MutualTls(certificates, servers[0].port, servers[1].port)
    finally:
        for server in reversed(servers):
            server.stop(0)


def test_with_mtls_the_loans_certificate_and_token_deliver_loans_events(
    mutual_tls: MutualTls,
) -> None:
    reader = mutual_tls.reader()
    event = _event(reader.organization_id, "loans")

    responses = mutual_tls.ingest("loans", mutual_tls.service_token("loans"), [event])

    assert acked_ids(responses) == [[event.event_id]]


@pytest.mark.parametrize(
    ("holder", "token_of", "source", "reason"),
    [
        # A token minted with auth's signing key is not enough without the service's key.
        ("operator", "loans", "loans", "SERVICE_CERTIFICATE_REQUIRED"),
        ("audit", "loans", "loans", "SERVICE_CERTIFICATE_REQUIRED"),
        ("loans", "auth", "auth", "SERVICE_CERTIFICATE_REQUIRED"),
        ("loans", "loans", "auth", "EVENT_SOURCE_NOT_CALLER"),
    ],
)
def test_with_mtls_a_token_needs_its_own_services_certificate_and_source(
    mutual_tls: MutualTls, holder: str, token_of: str, source: str, reason: str
) -> None:
    reader = mutual_tls.reader()
    event = _event(reader.organization_id, source)

    responses = mutual_tls.ingest(holder, mutual_tls.service_token(token_of), [event])

    assert _refusal(responses).reason == reason
    with mutual_tls.channel("audit", "operator") as channel:
        listed = audit_grpc.AuditServiceStub(channel).ListAuditEvents(
            audit_pb.ListAuditEventsRequest(page_size=10), metadata=reader.metadata
        )
    assert listed.HasField("page"), listed.error
    assert list(listed.page.events) == []
