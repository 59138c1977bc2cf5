"""Builds the loan service: database, auth client, relay to audit, gRPC server."""

from __future__ import annotations

import grpc
from loansuite.audit.v1 import audit_service_pb2_grpc
from loansuite.auth.v1 import auth_service_pb2_grpc
from loansuite.loans.v1 import loan_service_pb2, loan_service_pb2_grpc

from services.loans.models import OutboxEvent
from services.loans.servicer import LoanServicer
from services.shared.audit_client import AuditSink
from services.shared.auth_client import RemoteKeyRing, RemoteUserDirectory, ServiceCredentials
from services.shared.db import Database
from services.shared.identity import Authenticator, TokenVerifier
from services.shared.migrations import upgrade
from services.shared.paging import PageTokens
from services.shared.relay import OutboxRelay
from services.shared.server import Registration, Server, create_server
from services.shared.settings import Settings

__all__ = ["start"]

SERVICE_NAME = loan_service_pb2.DESCRIPTOR.services_by_name["LoanService"].full_name


def start(settings: Settings, *, port: int | None = None) -> Server:
    """Migrate the loans database, build the service and start serving; port 0 picks a free one."""
    db = Database(settings.database_url("loans"))
    upgrade(db, "services.loans:migrations")
    secret = settings.resolved_service_secret()
    auth_channel = grpc.insecure_channel(settings.target("auth"))
    auth = auth_service_pb2_grpc.AuthServiceStub(auth_channel)
    credentials = ServiceCredentials(auth, service_name="loans", secret=secret)
    authenticator = Authenticator(
        TokenVerifier(
            RemoteKeyRing(auth), issuer=settings.token_issuer, audience=settings.token_audience
        ),
        RemoteUserDirectory(auth, credentials, ttl=settings.user_cache_ttl_seconds),
    )
    audit_channel = grpc.insecure_channel(settings.target("audit"))
    relay = OutboxRelay(
        db,
        OutboxEvent,
        AuditSink(audit_service_pb2_grpc.AuditServiceStub(audit_channel), credentials),
    )
    servicer = LoanServicer(db, authenticator, PageTokens(secret, purpose="loans"))
    server = create_server(
        [
            Registration(
                SERVICE_NAME,
                lambda s: loan_service_pb2_grpc.add_LoanServiceServicer_to_server(servicer, s),
            )
        ],
        f"{settings.host}:{settings.port('loans') if port is None else port}",
        max_workers=settings.max_workers,
        model=settings.server_model,
    )
    relay.start()
    for release in (db.dispose, auth_channel.close, audit_channel.close, relay.stop):
        server.on_stop(release)
    return server
