"""The composition root of auth: database, keys, servicer, server and outbox relay."""

from __future__ import annotations

from datetime import timedelta

from loansuite.audit.v1.audit_service_pb2_grpc import AuditServiceStub
from loansuite.auth.v1 import auth_service_pb2, auth_service_pb2_grpc

from services.auth import passwords, schemas, use_cases
from services.auth.common_passwords import load_common_passwords
from services.auth.jwks import JWKS_PATH, jwks_document
from services.auth.key_encryption import KeyEncryptionKey, load_key_encryption_key
from services.auth.models import OutboxEvent
from services.auth.servicer import AuthServicer
from services.auth.signing_keys import (
    CurrentSigningKey,
    Rotation,
    ensure_signing_key,
    rotate_signing_key,
    seal_plaintext_keys,
)
from services.auth.throttle import ThrottlePolicy
from services.auth.tokens import LocalKeyRing, LocalServiceTokens, TokenMinter
from services.shared.audit_client import AuditSink, relay_channel
from services.shared.db import Database
from services.shared.identity import Role, TokenVerifier
from services.shared.metrics import watch_pool
from services.shared.migrations import upgrade
from services.shared.relay import OutboxRelay
from services.shared.retention import RetentionSweep
from services.shared.server import Registration, Server, create_server
from services.shared.settings import Settings
from services.shared.tls import tls_config

__all__ = ["create_admin", "rotate_keys", "start"]

MIGRATIONS = "services.auth:migrations"
SERVICE_NAME = "auth"


def start(settings: Settings, *, port: int | None = None) -> Server:
    """Migrate the auth database, build the service and start serving; port 0 picks a free one."""
    tls = tls_config(settings)
    kek = _key_encryption_key(settings)  # first: a malformed key stops the start at once
    db = Database(settings.database_url("auth"))
    try:
        upgrade(db, MIGRATIONS)
        seal_plaintext_keys(db, kek)  # before anything signs (migration 0002 explains why)
        load_common_passwords()  # now, not in the first Register
        minter = _minter(settings, db, kek)
        server = create_server(
            [_registration(_servicer(settings, db, minter))],
            f"{settings.host}:{port if port is not None else settings.port('auth')}",
            max_workers=settings.max_workers,
            max_concurrent_rpcs=settings.max_concurrent_rpcs,
            model=settings.server_model,
            reuse_port=settings.reuse_port,
            tls=tls,
            max_receive_message_bytes=settings.max_receive_message_bytes,
            max_send_message_bytes=settings.max_send_message_bytes,
        )
    except BaseException:
        db.dispose()
        raise
    channel = relay_channel(settings.target("audit"), tls)
    sink = AuditSink(AuditServiceStub(channel), _own_tokens(minter))
    relay = OutboxRelay(db, OutboxEvent, sink, source="auth")
    relay.start(health=server.set_health)
    sweep = RetentionSweep(db, settings.retention(), outbox=OutboxEvent, source="auth")
    sweep.start(settings.retention_sweep_seconds)
    # Run in reverse: the sweep and the relay stop, then the channel closes, then the engine.
    watch_pool(SERVICE_NAME, db.engine)
    keep_for = timedelta(seconds=settings.access_token_ttl_seconds)
    server.documents[JWKS_PATH] = lambda: jwks_document(db, keep_for=keep_for)
    server.on_stop(db.dispose)
    server.on_stop(channel.close)
    server.on_stop(relay.stop)
    server.on_stop(sweep.stop)
    return server


def create_admin(settings: Settings, *, email: str, password: str, name: str) -> str:
    """Operator command: create an admin in the platform organization; returns the user id."""
    account = schemas.parse_new_account(email=email, password=password, name=name, role=Role.ADMIN)
    password_hash = passwords.hash_password(account.password)
    db = Database(settings.database_url("auth"))
    try:
        upgrade(db, MIGRATIONS)
        with db.write() as session:
            user = use_cases.create_admin(session, account=account, password_hash=password_hash)
            return user.id
    finally:
        db.dispose()


def rotate_keys(settings: Settings) -> Rotation:
    """Operator command: sign with a new key from now on; the old one verifies until expiry."""
    kek = _key_encryption_key(settings)
    db = Database(settings.database_url("auth"))
    try:
        upgrade(db, MIGRATIONS)
        seal_plaintext_keys(db, kek)
        keep_for = timedelta(seconds=settings.access_token_ttl_seconds)
        return rotate_signing_key(db, kek, keep_for=keep_for)
    finally:
        db.dispose()


def _key_encryption_key(settings: Settings) -> KeyEncryptionKey:
    return load_key_encryption_key(settings.key_encryption_key, settings.data_dir)


def _minter(settings: Settings, db: Database, kek: KeyEncryptionKey) -> TokenMinter:
    ensure_signing_key(db, kek)
    keys = CurrentSigningKey(db, kek)
    keys.current()  # opened now: a wrong key-encryption key stops the start, not a login
    return TokenMinter(
        keys,
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        ttl=timedelta(seconds=settings.access_token_ttl_seconds),
    )


def _servicer(settings: Settings, db: Database, minter: TokenMinter) -> AuthServicer:
    verifier = TokenVerifier(
        LocalKeyRing(db), issuer=settings.token_issuer, audience=settings.token_audience
    )
    return AuthServicer(
        db,
        minter=minter,
        verifier=verifier,
        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
        service_secret=settings.resolved_service_secret(),
        throttle_policy=ThrottlePolicy(
            max_account_failures=settings.login_max_failures_per_account,
            max_peer_failures=settings.login_max_failures_per_peer,
            window=timedelta(seconds=settings.login_failure_window_seconds),
            lockout=timedelta(seconds=settings.login_lockout_seconds),
        ),
    )


def _own_tokens(minter: TokenMinter) -> LocalServiceTokens:
    # Auth mints its own service token: asking itself over gRPC would be a loop.
    return LocalServiceTokens(minter, service_name=SERVICE_NAME)


def _registration(servicer: AuthServicer) -> Registration:
    return Registration(
        name=auth_service_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
        add=lambda server: auth_service_pb2_grpc.add_AuthServiceServicer_to_server(
            servicer, server
        ),
    )
