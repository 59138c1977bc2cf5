"""Settings from flags and LOANSUITE_* environment variables."""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Retention", "ServiceName", "Settings"]

ServiceName = Literal["auth", "loans", "audit"]

DEFAULT_PORTS: dict[ServiceName, int] = {"auth": 50051, "loans": 50052, "audit": 50053}


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
    token_issuer: str = "loansuite-auth"
    token_audience: str = "loansuite"
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 14 * 24 * 3600
    # How long a loaded user profile is trusted; a deactivated user stops
    # working within this time.
    user_cache_ttl_seconds: float = 10.0
    server_model: Literal["thread", "aio"] = "thread"
    max_workers: int = 32
    # Calls in progress or queued for a thread, streams included; past it a new call
    # is refused with RESOURCE_EXHAUSTED rather than queued without bound.
    max_concurrent_rpcs: int = Field(default=1000, ge=1)
    # Retention: delivered outbox rows, and idempotency records (a retry with the same
    # request_id is recognised for this long); a sweep runs every retention_sweep_seconds.
    outbox_retention_seconds: float = 7 * 24 * 3600
    idempotency_retention_seconds: float = 24 * 3600
    retention_sweep_seconds: float = 300.0
    # Set for the worker processes of `serve --workers N`, which share one port; a
    # lone server keeps it off, so that a taken port fails loudly.
    reuse_port: bool = False
    grace_seconds: float = 10.0
    log_level: str = "INFO"

    def retention(self) -> Retention:
        return Retention(self.outbox_retention_seconds, self.idempotency_retention_seconds)

    def database_url(self, service: ServiceName) -> str:
        url: str = getattr(self, f"{service}_database_url")
        return url or f"sqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def port(self, service: ServiceName) -> int:
        port: int = getattr(self, f"{service}_port")
        return port

    def target(self, service: Literal["auth", "audit"]) -> str:
        target: str = getattr(self, f"{service}_target")
        return target or f"{self.host}:{self.port(service)}"

    def resolved_service_secret(self) -> str:
        """The configured secret, or the one kept in the data directory (made on first use)."""
        if self.service_secret:
            return self.service_secret
        path = self.data_dir / "service-secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Written aside, then linked into place: a process racing us reads a
            # whole secret or finds none, and exactly one secret wins.
            staged = path.with_name(f".service-secret-{secrets.token_hex(8)}")
            staged.write_text(secrets.token_urlsafe(32))
            staged.chmod(0o600)
            with contextlib.suppress(FileExistsError):
                os.link(staged, path)
            staged.unlink()
        return path.read_text().strip()
