"""Builds the audit service: database, heads file, auth client, gRPC server."""

from __future__ import annotations

from pathlib import Path

from loansuite.audit.v1 import audit_service_pb2, audit_service_pb2_grpc
from loansuite.auth.v1.auth_service_pb2_grpc import AuthServiceStub

from services.audit.heads import HEADS_FILE_NAME, HeadsFile
from services.audit.servicer import AuditServicer
from services.audit.tail import Tails
from services.audit.throttle import CallRate
from services.shared.auth_client import RemoteKeyRing, RemoteUserDirectory, ServiceCredentials
from services.shared.db import Database
from services.shared.identity import Authenticator, TokenVerifier
from services.shared.metrics import watch_pool
from services.shared.migrations import upgrade
from services.shared.paging import PageTokens
from services.shared.server import Registration, Server, create_server
from services.shared.settings import Settings
from services.shared.tls import open_channel, tls_config

__all__ = ["start"]

SERVICE_NAME = audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name


def start(settings: Settings, *, port: int | None = None, heads_path: Path | None = None) -> Server:
    """Migrate the audit database, build the service and start serving; port 0 picks a free one.

    Heads are published to heads_path, by default the data directory's audit-heads.jsonl.
    """
    db = Database(settings.database_url("audit"))
    watch_pool("audit", db.engine)
    upgrade(db, "services.audit:migrations")
    secret = settings.resolved_service_secret()
    tls = tls_config(settings)
    channel = open_channel(settings.target("auth"), tls)
    tails = Tails(
        db, per_user=settings.streams_per_user, per_organization=settings.streams_per_organization
    )
    servicer = AuditServicer(
        db,
        _authenticator(settings, AuthServiceStub(channel), secret),
        PageTokens(secret, purpose="audit-events"),
        heads=HeadsFile(heads_path or settings.data_dir / HEADS_FILE_NAME),
        tails=tails,
        certificates_required=tls is not None and tls.require_client_auth,
        verify_rate=CallRate(
            burst=settings.verify_chain_burst,
            interval=settings.verify_chain_interval_seconds,
            what="VerifyChain",
        ),
    )
    server = create_server(
        [
            Registration(
                SERVICE_NAME,
                lambda s: audit_service_pb2_grpc.add_AuditServiceServicer_to_server(servicer, s),
            )
        ],
        f"{settings.host}:{settings.port('audit') if port is None else port}",
        max_workers=settings.max_workers,
        max_concurrent_rpcs=settings.max_concurrent_rpcs,
        model=settings.server_model,
        reuse_port=settings.reuse_port,
        tls=tls,
        max_receive_message_bytes=settings.max_receive_message_bytes,
        max_send_message_bytes=settings.max_send_message_bytes,
    )
    server.on_stopping(tails.close)  # open tails end at once instead of holding the grace
    server.on_stopping(servicer.stop_ingesting)  # an open ingest stream takes no more
    for release in (db.dispose, channel.close):
        server.on_stop(release)
    return server


def _authenticator(settings: Settings, stub: AuthServiceStub, secret: str) -> Authenticator:
    credentials = ServiceCredentials(stub, service_name="audit", secret=secret)
    return Authenticator(
        TokenVerifier(
            RemoteKeyRing(stub), issuer=settings.token_issuer, audience=settings.token_audience
        ),
        RemoteUserDirectory(stub, credentials, ttl=settings.user_cache_ttl_seconds),
    )
