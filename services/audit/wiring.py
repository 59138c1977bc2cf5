"""Builds the audit service: database, auth client, gRPC server."""

from __future__ import annotations

import grpc
from loansuite.audit.v1 import audit_service_pb2, audit_service_pb2_grpc
from loansuite.auth.v1.auth_service_pb2_grpc import AuthServiceStub

from services.audit.servicer import AuditServicer
from services.shared.auth_client import RemoteKeyRing, RemoteUserDirectory, ServiceCredentials
from services.shared.db import Database
from services.shared.identity import Authenticator, TokenVerifier
from services.shared.migrations import upgrade
from services.shared.paging import PageTokens
from services.shared.server import Registration, Server, create_server
from services.shared.settings import Settings

__all__ = ["start"]

SERVICE_NAME = audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name


def start(settings: Settings, *, port: int | None = None) -> Server:
    """Migrate the audit database, build the service and start serving; port 0 picks a free one."""
    db = Database(settings.database_url("audit"))
    upgrade(db, "services.audit:migrations")
    secret = settings.resolved_service_secret()
    channel = grpc.insecure_channel(settings.target("auth"))
    stub = AuthServiceStub(channel)
    credentials = ServiceCredentials(stub, service_name="audit", secret=secret)
    authenticator = Authenticator(
        TokenVerifier(
            RemoteKeyRing(stub), issuer=settings.token_issuer, audience=settings.token_audience
        ),
        RemoteUserDirectory(stub, credentials, ttl=settings.user_cache_ttl_seconds),
    )
    servicer = AuditServicer(db, authenticator, PageTokens(secret, purpose="audit-events"))
    server = create_server(
        [
            Registration(
                SERVICE_NAME,
                lambda s: audit_service_pb2_grpc.add_AuditServiceServicer_to_server(servicer, s),
            )
        ],
        f"{settings.host}:{settings.port('audit') if port is None else port}",
        max_workers=settings.max_workers,
        model=settings.server_model,
    )
    for release in (db.dispose, channel.close):
        server.on_stop(release)
    return server
