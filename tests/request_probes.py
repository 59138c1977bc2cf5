"""A valid request of every RPC of the three services, with a caller it succeeds for.

Tests that probe one field at a time start from these: with every other field
valid, whatever the call answers is about the field they changed. LoanService
requests come from the authorization matrix (each with the first party whose
cell is OK), so a new RPC there needs no second table here.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import grpc
from google.protobuf.message import Message
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.common.v1 import error_pb2

from services.auth.wiring import create_admin
from services.shared._types import Metadata
from tests.audit.support import make_event, service_metadata
from tests.loans.journey import Journey, LoanAt
from tests.loans.test_authorization_matrix import CALLERS, FIXTURES, MATRIX, OK, REQUESTS
from tests.request_fields import METHODS
from tests.support import PASSWORD, SERVICE_SECRET, Account, Suite, log_in

__all__ = ["Answer", "World", "call"]

STREAM_WAIT: Final = 2.0  # a refused stream answers at once; a live one says nothing


@dataclass
class World:
    """The suite and the people the probes call as, with loans brought to each state."""

    suite: Suite
    borrower: Account
    lender: Account
    admin: Account
    journey: Journey
    _loans: dict[str, LoanAt]

    @classmethod
    def of(cls, suite: Suite) -> World:
        borrower, lender = suite.register("BORROWER"), suite.register("LENDER")
        email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        create_admin(suite.settings, email=email, password=PASSWORD, name="Probe Admin")
        admin = log_in(suite.auth, email)
        return cls(suite, borrower, lender, admin, Journey(suite.loans, borrower, lender), {})

    def service(self) -> Metadata:
        return service_metadata(self.suite.auth)

    def loan_at(self, fixture: str) -> LoanAt:
        """A loan in the fixture's state, reused until a call may have changed it."""
        if fixture not in self._loans:
            self._loans[fixture] = FIXTURES[fixture](self.journey)
        return self._loans[fixture]

    def forget_loans(self) -> None:
        self._loans.clear()


@dataclass(frozen=True)
class Answer:
    """What a call answered: its envelope error (None for a payload) and its gRPC status."""

    error: error_pb2.Error | None
    status: grpc.StatusCode

    @property
    def code(self) -> str:
        if self.status != grpc.StatusCode.OK:
            return f"STATUS_{self.status.name}"
        if self.error is None:
            return "OK"
        return error_pb2.ErrorCode.Name(self.error.code).removeprefix("ERROR_CODE_")


def _loans_probe(rpc: str) -> tuple[Callable[[World], Message], Callable[[World], Metadata]]:
    row = MATRIX[rpc]
    party = next(c for c in CALLERS if getattr(row, c) == OK)

    def build(world: World) -> Message:
        return REQUESTS[rpc](world.loan_at(row.fixture))

    def caller(world: World) -> Metadata:
        account: Account = getattr(world, party)
        return account.metadata

    return build, caller


def _register(world: World) -> Message:
    return auth_pb.RegisterRequest(
        email=f"probe-{uuid.uuid4().hex[:10]}@example.com",
        password=PASSWORD,
        name="Probe User",
        role=auth_pb.USER_ROLE_BORROWER,
        organization_name=f"Probe Org {uuid.uuid4().hex[:6]}",
    )


def _refresh_token(world: World) -> str:
    request = auth_pb.LoginRequest(email=world.borrower.email, password=PASSWORD)
    login = world.suite.auth.Login(request)
    assert login.HasField("session"), login.error
    return login.session.refresh_token


def _anonymous(world: World) -> Metadata:
    return ()


def _user(world: World) -> Metadata:
    return world.borrower.metadata


def _admin(world: World) -> Metadata:
    return world.admin.metadata


def _service(world: World) -> Metadata:
    return world.service()


_OTHERS: Final[dict[str, tuple[Callable[[World], Message], Callable[[World], Metadata]]]] = {
    "Register": (_register, _anonymous),
    "Login": (
        lambda w: auth_pb.LoginRequest(email=w.borrower.email, password=PASSWORD),
        _anonymous,
    ),
    "RefreshSession": (
        lambda w: auth_pb.RefreshSessionRequest(refresh_token=_refresh_token(w)),
        _anonymous,
    ),
    "Logout": (lambda w: auth_pb.LogoutRequest(refresh_token=_refresh_token(w)), _anonymous),
    "GetUser": (lambda w: auth_pb.GetUserRequest(user_id=w.borrower.user_id), _user),
    "FindUserByEmail": (
        lambda w: auth_pb.FindUserByEmailRequest(email=w.lender.email),
        _service,
    ),
    "WhoAmI": (lambda w: auth_pb.WhoAmIRequest(), _user),
    "ListPublicKeys": (lambda w: auth_pb.ListPublicKeysRequest(), _anonymous),
    "IssueServiceToken": (
        lambda w: auth_pb.IssueServiceTokenRequest(
            service_name="loans", service_secret=SERVICE_SECRET
        ),
        _anonymous,
    ),
    "IngestEvents": (
        lambda w: audit_pb.IngestEventsRequest(events=[make_event(w.borrower.organization_id)]),
        _service,
    ),
    "ListAuditEvents": (lambda w: audit_pb.ListAuditEventsRequest(page_size=10), _admin),
    "VerifyChain": (
        lambda w: audit_pb.VerifyChainRequest(
            expected_head=audit_pb.ChainHead(sequence=1, hash="0" * 64)
        ),
        _admin,
    ),
    "TailAuditEvents": (lambda w: audit_pb.TailAuditEventsRequest(), _admin),
}


def probe(rpc: str) -> tuple[Callable[[World], Message], Callable[[World], Metadata]]:
    """How to build a valid request of rpc, and who calls it."""
    if rpc in _OTHERS:
        return _OTHERS[rpc]
    assert rpc in MATRIX, f"{rpc} has no probe: give it a row in the authorization matrix"
    return _loans_probe(rpc)


def _stub_method(world: World, rpc: str) -> Any:
    service = METHODS[rpc].containing_service.name
    stubs = {
        "AuthService": world.suite.auth,
        "LoanService": world.suite.loans,
        "AuditService": world.suite.audit,
    }
    return getattr(stubs[service], rpc)


def call(world: World, rpc: str, request: Message, metadata: Metadata) -> Answer:
    """Send request to rpc as metadata's caller; a stream is read until it answers or settles."""
    method = _stub_method(world, rpc)
    descriptor = METHODS[rpc]
    try:
        if descriptor.client_streaming:
            return _first(method(iter([request]), metadata=metadata, timeout=30))
        if descriptor.server_streaming:
            return _first(method(request, metadata=metadata, timeout=30))
        response = method(request, metadata=metadata, timeout=30)
    except grpc.RpcError as exc:
        return Answer(None, exc.code())
    return Answer(response.error if response.HasField("error") else None, grpc.StatusCode.OK)


def _first(stream: Any) -> Answer:
    """The stream's first response, or OK when it stays open and quiet (a live subscription)."""
    items: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        try:
            for response in stream:
                items.put(response)
                return
        except grpc.RpcError as exc:
            items.put(exc)
        items.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        item = items.get(timeout=STREAM_WAIT)
    except queue.Empty:
        item = None
    finally:
        stream.cancel()
    if isinstance(item, grpc.RpcError):
        return Answer(None, item.code())
    if item is None or not item.HasField("error"):
        return Answer(None, grpc.StatusCode.OK)
    return Answer(item.error, grpc.StatusCode.OK)
