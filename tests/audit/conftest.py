"""A real auth server and a real audit server on port 0, per test and backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc

from services.audit.wiring import start as start_audit
from services.auth.wiring import start as start_auth
from tests.audit.support import Stack, audit_settings
from tests.auth.support import auth_settings
from tests.support import SERVICE_SECRET, ServerModel


@pytest.fixture
def audit_url(new_database_url: Callable[[str], str]) -> str:
    return new_database_url("audit")


@pytest.fixture
def server_model() -> ServerModel:
    """The audit server's grpcio model; a test parametrizes it to try the other."""
    return "thread"


@pytest.fixture
def stack(
    new_database_url: Callable[[str], str],
    audit_url: str,
    server_model: ServerModel,
    tmp_path: Path,
) -> Iterator[Stack]:
    # Auth relays its own events (registrations, logins) to an address where
    # nothing listens, so they stay out of the logs these tests inspect.
    auth = auth_settings(tmp_path, new_database_url("auth"), SERVICE_SECRET)
    auth_server = start_auth(auth, port=0)
    audit = audit_settings(tmp_path, audit_url, auth_server.port, server_model)
    audit_server = start_audit(audit, port=0)
    auth_channel = grpc.insecure_channel(f"127.0.0.1:{auth_server.port}")
    audit_channel = grpc.insecure_channel(f"127.0.0.1:{audit_server.port}")
    yield Stack(
        auth,
        audit,
        auth_grpc.AuthServiceStub(auth_channel),
        audit_grpc.AuditServiceStub(audit_channel),
    )
    audit_channel.close()
    auth_channel.close()
    audit_server.stop(0)
    auth_server.stop(0)
