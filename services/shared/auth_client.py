"""The auth service as other services see it: keys, service tokens and user profiles."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol, TypeVar

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from loansuite.auth.v1 import auth_service_pb2 as pb
from loansuite.auth.v1 import auth_service_pb2_grpc as pb_grpc

from services.shared._types import Metadata
from services.shared.caches import ExpiringCache
from services.shared.context import outgoing_metadata, time_remaining
from services.shared.envelope import Envelope, error_from_message
from services.shared.errors import (
    FailedPreconditionError,
    NotFoundError,
    UnauthenticatedError,
    UnavailableError,
)
from services.shared.identity import CachedKeyRing, Caller, Role, verification_keys

__all__ = [
    "DirectoryUser",
    "RemoteKeyRing",
    "RemoteUserDirectory",
    "RemoteUserFinder",
    "ServiceCredentials",
    "UserFinder",
    "call_timeout",
    "role_from_proto",
]

CALL_TIMEOUT = 5.0  # the most a call to auth may take; a caller's earlier deadline wins
_ROLES = {
    pb.USER_ROLE_BORROWER: Role.BORROWER,
    pb.USER_ROLE_LENDER: Role.LENDER,
    pb.USER_ROLE_ADMIN: Role.ADMIN,
}


def role_from_proto(role: pb.UserRole.ValueType) -> Role:
    return _ROLES[role]


Req = TypeVar("Req")
Resp = TypeVar("Resp", bound=Envelope)


def _call(
    rpc: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req, *, metadata: Metadata
) -> Resp:
    """Call auth; a transport failure becomes UNAVAILABLE, an envelope error is raised.

    The error keeps its class (NotFoundError for NOT_FOUND, ...), so callers catch it
    as they would the same outcome decided in their own process.
    """
    try:
        response = rpc(request, timeout=call_timeout(), metadata=metadata)
    except grpc.RpcError as exc:
        raise UnavailableError(
            "the auth service is unavailable", reason="AUTH_UNAVAILABLE"
        ) from exc
    if response.HasField("error"):
        raise error_from_message(response.error)
    return response


def call_timeout() -> float:
    """The time left to the call being served, capped by CALL_TIMEOUT.

    Auth is never asked to work longer than the client still waits: past the
    client's deadline the answer would be thrown away, and the thread held.
    """
    remaining = time_remaining()
    return CALL_TIMEOUT if remaining is None else max(0.0, min(CALL_TIMEOUT, remaining))


class RemoteKeyRing(CachedKeyRing):
    """Public keys from auth's ListPublicKeys."""

    def __init__(self, stub: pb_grpc.AuthServiceStub, *, min_refresh_seconds: float = 5.0) -> None:
        super().__init__(lambda: _public_keys(stub), min_refresh_seconds=min_refresh_seconds)


def _public_keys(stub: pb_grpc.AuthServiceStub) -> dict[str, Ed25519PublicKey]:
    response = _call(stub.ListPublicKeys, pb.ListPublicKeysRequest(), metadata=outgoing_metadata())
    return verification_keys((k.kid, k.public_key_pem) for k in response.key_set.keys)


class ServiceCredentials:
    """This service's own access token, obtained with the deployment's secret and renewed early."""

    def __init__(self, stub: pb_grpc.AuthServiceStub, *, service_name: str, secret: str) -> None:
        self._stub = stub
        self._request = pb.IssueServiceTokenRequest(
            service_name=service_name, service_secret=secret
        )
        self._token = ""
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if time.time() > self._expires_at - 60:
                response = _call(
                    self._stub.IssueServiceToken, self._request, metadata=outgoing_metadata()
                )
                self._token = response.token.access_token
                self._expires_at = response.token.expire_time.ToSeconds()
            return self._token


class RemoteUserDirectory:
    """GetUser with a service token; profiles cached for ttl seconds."""

    def __init__(
        self,
        stub: pb_grpc.AuthServiceStub,
        credentials: ServiceCredentials,
        *,
        ttl: float,
        size: int = 10_000,
    ) -> None:
        self._stub = stub
        self._credentials = credentials
        self._ttl = ttl
        self._cache: ExpiringCache[str, Caller] = ExpiringCache(size)

    def cached(self, user_id: str) -> bool:
        return self._cache.get(user_id) is not None

    def load(self, user_id: str) -> Caller:
        caller = self._cache.get(user_id)
        if caller is not None:
            return caller
        try:
            response = _call(
                self._stub.GetUser,
                pb.GetUserRequest(user_id=user_id),
                metadata=outgoing_metadata(bearer=self._credentials.token()),
            )
        except (NotFoundError, FailedPreconditionError):
            raise UnauthenticatedError(
                "the user no longer exists or is deactivated", reason="USER_INACTIVE"
            ) from None
        user = response.user
        if not user.active:
            raise UnauthenticatedError("the user is deactivated", reason="USER_INACTIVE")
        caller = Caller(
            user_id=user.id,
            organization_id=user.organization.id,
            role=role_from_proto(user.role),
            email=user.email,
        )
        self._cache.put(user_id, caller, expires_at=time.monotonic() + self._ttl)
        return caller


@dataclass(frozen=True)
class DirectoryUser:
    """An active user as another service may know them: who, which role, which organization."""

    user_id: str
    role: Role
    organization_id: str


class UserFinder(Protocol):
    """Finds the active user with an email; None when there is none."""

    def find_by_email(self, email: str) -> DirectoryUser | None: ...


class RemoteUserFinder:
    """FindUserByEmail with a service token; never cached, so an invitation sees the present."""

    def __init__(self, stub: pb_grpc.AuthServiceStub, credentials: ServiceCredentials) -> None:
        self._stub = stub
        self._credentials = credentials

    def find_by_email(self, email: str) -> DirectoryUser | None:
        try:
            response = _call(
                self._stub.FindUserByEmail,
                pb.FindUserByEmailRequest(email=email),
                metadata=outgoing_metadata(bearer=self._credentials.token()),
            )
        except NotFoundError:
            return None  # an outcome the caller decides on, not a failure of this call
        user = response.user
        if not user.active or user.role not in _ROLES:
            return None
        return DirectoryUser(user.id, role_from_proto(user.role), user.organization.id)
