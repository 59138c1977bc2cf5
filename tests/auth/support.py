"""Auth test support: a running auth server with helpers to register, log in and inspect."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from loansuite.auth.v1 import auth_service_pb2 as pb
from loansuite.auth.v1 import auth_service_pb2_grpc as pb_grpc
from loansuite.common.v1 import error_pb2
from sqlalchemy import Executable, create_engine, text

from services.auth.wiring import create_admin, start
from services.shared._types import Metadata
from services.shared.server import Server
from services.shared.settings import Settings
from tests.support import PASSWORD, bearer


@dataclass
class Person:
    """A registered user, logged in once."""

    user: pb.User
    session: pb.Session
    password: str = PASSWORD

    @property
    def bearer(self) -> Metadata:
        return bearer(self.session.access_token)


@dataclass
class AuthService:
    """A running auth server and a stub on a channel to it."""

    settings: Settings
    server: Server
    stub: pb_grpc.AuthServiceStub

    def register(
        self, role: pb.UserRole.ValueType = pb.USER_ROLE_BORROWER, **fields: str
    ) -> pb.User:
        request = {
            "email": f"{uuid.uuid4().hex[:10]}@example.com",
            "password": PASSWORD,
            "name": "Ada Lovelace",
            "organization_name": "Analytical Engines Ltd",
            **fields,
        }
        response = self.stub.Register(pb.RegisterRequest(role=role, **request))
        assert response.WhichOneof("result") == "user", response
        return response.user

    def log_in(self, email: str, password: str = PASSWORD) -> pb.Session:
        response = self.stub.Login(pb.LoginRequest(email=email, password=password))
        assert response.WhichOneof("result") == "session", response
        return response.session

    def person(self, role: pb.UserRole.ValueType = pb.USER_ROLE_BORROWER) -> Person:
        user = self.register(role)
        return Person(user, self.log_in(user.email))

    def admin(self) -> Person:
        email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        create_admin(self.settings, email=email, password=PASSWORD, name="Grace Hopper")
        session = self.log_in(email)
        return Person(session.user, session)

    def service_token(self, name: str = "loans") -> str:
        request = pb.IssueServiceTokenRequest(
            service_name=name, service_secret=self.settings.resolved_service_secret()
        )
        response = self.stub.IssueServiceToken(request)
        assert response.WhichOneof("result") == "token", response
        return response.token.access_token

    def sql(self, statement: str | Executable, **params: object) -> list[tuple[object, ...]]:
        """Run a statement on the auth database through an engine of our own."""
        engine = create_engine(self.settings.database_url("auth"))
        try:
            with engine.begin() as connection:
                if isinstance(statement, str):
                    statement = text(statement)
                result = connection.execute(statement, params)
                return [tuple(row) for row in result] if result.returns_rows else []
        finally:
            engine.dispose()

    def outbox(self) -> list[dict[str, Any]]:
        """The audit events waiting in the outbox, oldest first, as their JSON decodes."""
        rows = self.sql("SELECT payload FROM auth_outbox_events ORDER BY id")
        return [json.loads(str(payload)) for (payload,) in rows]


def auth_settings(data_dir: Path, database_url: str, service_secret: str = "") -> Settings:
    """Settings for auth alone; without a service secret it makes one in data_dir."""
    # Audit is unreachable on purpose: events wait in the outbox for the tests to read.
    return Settings(
        data_dir=data_dir,
        auth_database_url=database_url,
        audit_target="127.0.0.1:1",
        host="127.0.0.1",
        service_secret=service_secret,
    )


@contextlib.contextmanager
def running(settings: Settings) -> Iterator[AuthService]:
    """Start auth on a free port; stop it and close the channel afterwards."""
    server = start(settings, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield AuthService(settings, server, pb_grpc.AuthServiceStub(channel))
    finally:
        channel.close()
        server.stop(grace=1)


def without_request_id(error: error_pb2.Error) -> error_pb2.Error:
    """An Error as compared between calls: everything but the per-call request id."""
    copy = error_pb2.Error()
    copy.CopyFrom(error)
    copy.ClearField("request_id")
    return copy
