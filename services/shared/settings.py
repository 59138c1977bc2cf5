"""Settings from flags and LOANSUITE_* environment variables."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.shared.files import private_directory, write_private_once

__all__ = ["Retention", "ServiceName", "Settings"]

ServiceName = Literal["auth", "loans", "audit"]

DEFAULT_PORTS: dict[ServiceName, int] = {"auth": 50051, "loans": 50052, "audit": 50053}
DEFAULT_HTTP_PORTS: dict[ServiceName, int] = {"auth": 9451, "loans": 9452, "audit": 9453}


@dataclass(frozen=True)
class Retention:
    """How long each kind of row is kept, in seconds."""

    outbox_seconds: float
    idempotency_seconds: float


class Settings(BaseSettings):
    """Everything a service process needs to know; one instance per process."""

    model_config = SettingsConfigDict(env_prefix="LOANSUITE_", frozen=True)

    data_dir: Path = Path("var")
    # Database URL per service; empty means a SQLite file in data_dir.
    auth_database_url: str = ""
    loans_database_url: str = ""
    audit_database_url: str = ""
    host: str = "127.0.0.1"
    auth_port: int = DEFAULT_PORTS["auth"]
    loans_port: int = DEFAULT_PORTS["loans"]
    audit_port: int = DEFAULT_PORTS["audit"]
    # Where the other services are reached; empty means host:port above.
    auth_target: str = ""
    audit_target: str = ""
    # Shared by the deployment's services to obtain service tokens from auth;
    # empty means a random secret kept in data_dir/service-secret.
    service_secret: str = Field(default="", repr=False)
    # Seals auth's private signing keys at rest: 32 bytes in base64url
    # (services/auth/key_encryption.py); empty means data_dir/key-encryption-key.
    key_encryption_key: str = Field(default="", repr=False)
    # Login throttling (services/auth/throttle.py): this many failures within the
    # window lock the account, or the peer's address, for the lockout.
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_peer: int = Field(default=50, ge=1)
    login_failure_window_seconds: float = Field(default=900.0, gt=0)
    login_lockout_seconds: float = Field(default=900.0, gt=0)
    token_issuer: str = "loansuite-auth"
    token_audience: str = "loansuite"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 14 * 24 * 3600
    # How long a loaded user profile is trusted; a deactivated user stops
    # working within this time.
    user_cache_ttl_seconds: float = 10.0
    # grpc.aio: reads and writes whose caller is known run on the event loop
    # (README "Server model"); "thread" is grpcio's thread-pool server.
    server_model: Literal["thread", "aio"] = "aio"
    max_workers: int = 32
    # Calls in progress or queued for a thread, streams included; past it a new call
    # is refused with RESOURCE_EXHAUSTED rather than queued without bound.
    max_concurrent_rpcs: int = Field(default=1000, ge=1)
    # WatchLoans and TailAuditEvents streams one user, or one organization, may hold
    # open in one process, within that process's limit for the kind of stream.
    streams_per_user: int = Field(default=4, ge=1)
    streams_per_organization: int = Field(default=8, ge=1)
    # VerifyChain calls per caller: a burst, then one per interval (audit/throttle.py).
    verify_chain_burst: int = Field(default=5, ge=1)
    verify_chain_interval_seconds: float = Field(default=10.0, gt=0)
    # Retention: delivered outbox rows, and idempotency records (a retry with the same
    # request_id is recognised for this long); a sweep runs every retention_sweep_seconds.
    outbox_retention_seconds: float = 7 * 24 * 3600
    idempotency_retention_seconds: float = 24 * 3600
    retention_sweep_seconds: float = 300.0
    # loans: how often a sweep records KPI periods missed by their due date (0: never;
    # reading a loan's reporting calendar records them too).
    reporting_sweep_seconds: float = Field(default=3600.0, ge=0)
    # Set for the worker processes of `serve --workers N`, which share one port; a
    # lone server keeps it off, so that a taken port fails loudly.
    reuse_port: bool = False
    grace_seconds: float = 10.0
    # After SIGTERM health reads NOT_SERVING while the server goes on serving this long, so
    # that balancers stop sending before the listener closes (docs/OPERATIONS.md).
    drain_seconds: float = Field(default=5.0, ge=0)
    # The HTTP side port of each service: /metrics, and /.well-known/jwks.json on auth.
    auth_http_port: int = DEFAULT_HTTP_PORTS["auth"]
    loans_http_port: int = DEFAULT_HTTP_PORTS["loans"]
    audit_http_port: int = DEFAULT_HTTP_PORTS["audit"]
    # Largest message a server accepts and sends (grpcio's receive default; clients'
    # default receive limit is the same, so a larger answer would fail at the client).
    max_receive_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_send_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # TLS (services/shared/tls.py): with a certificate and key every server listens with
    # TLS only and calls other services over TLS against the CA; "require" makes servers
    # demand client certificates. Empty: plaintext.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_file: str = ""
    tls_client_auth: Literal["none", "require"] = "none"
    log_level: str = "INFO"

    def retention(self) -> Retention:
        return Retention(self.outbox_retention_seconds, self.idempotency_retention_seconds)

    def database_url(self, service: ServiceName) -> str:
        url: str = getattr(self, f"{service}_database_url")
        return url or f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def port(self, service: ServiceName) -> int:
        port: int = getattr(self, f"{service}_port")
        return port

    def http_port(self, service: ServiceName) -> int:
        port: int = getattr(self, f"{service}_http_port")
        return port

    def target(self, service: Literal["auth", "audit"]) -> str:
        target: str = getattr(self, f"{service}_target")
        return target or f"{self.host}:{self.port(service)}"

    def resolved_service_secret(self) -> str:
        """The configured secret, or the one kept in the data directory (made on first use)."""
        if self.service_secret:
            return self.service_secret
        # 0600 in the 0700 data directory from the first byte; one secret wins a race.
        private_directory(self.data_dir)
        path = self.data_dir / "service-secret"
        return write_private_once(path, secrets.token_urlsafe(32).encode()).decode().strip()
