"""The envelope at the edge of every RPC, served by grpc_testing: no network, no database."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc_testing
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from loansuite.audit.v1 import audit_service_pb2 as pb
from loansuite.audit.v1.audit_service_pb2_grpc import AuditServiceServicer
from loansuite.common.v1 import error_pb2

from services.shared import errors
from services.shared.context import REQUEST_ID_HEADER
from services.shared.envelope import internal_error, streaming, unary
from services.shared.identity import Authenticator, CachedKeyRing, Caller, Role, TokenVerifier
from services.shared.metrics import calls

SERVICE = pb.DESCRIPTOR.services_by_name["AuditService"]
# Only a safety net: a call that never ends fails with DEADLINE_EXCEEDED instead of hanging.
PATIENCE = 30.0
ISSUER, AUDIENCE, KID = "loansuite-auth", "loansuite", "key-1"
SIGNING_KEY = Ed25519PrivateKey.generate()
CALLER = Caller(user_id="user-1", organization_id="org-1", role=Role.LENDER)
Metadata = tuple[tuple[str, str], ...]


# A step of a scripted stream: send an event, raise, or (None) wait for the client to cancel.
Step = pb.AuditEvent | Exception | None


class _Script(Iterator[pb.TailAuditEventsResponse]):
    """A scripted stream as a plain iterator: unlike a generator, it goes on after raising."""

    def __init__(self, steps: Iterator[Step], client_left: threading.Event) -> None:
        self._steps = steps
        self._client_left = client_left

    def __next__(self) -> pb.TailAuditEventsResponse:
        step = next(self._steps)
        if step is None:
            self._client_left.wait(PATIENCE)
            return next(self)
        if isinstance(step, Exception):
            raise step
        return pb.TailAuditEventsResponse(event=step)


@dataclass
class _Audit(AuditServiceServicer):
    """Each RPC does what the test scripted: answer, raise, or authenticate the caller."""

    failure: Exception | None = None
    stream: Sequence[Step] = ()
    authenticator: Authenticator | None = None
    client_left: threading.Event = field(default_factory=threading.Event)
    over: threading.Event = field(default_factory=threading.Event)

    @unary(pb.VerifyChainResponse)
    def VerifyChain(
        self, request: pb.VerifyChainRequest, context: grpc.ServicerContext
    ) -> pb.VerifyChainResponse:
        """Fail as scripted, else report an intact chain."""
        if self.failure is not None:
            raise self.failure
        return pb.VerifyChainResponse(verification=pb.ChainVerification(intact=True))

    @unary(pb.ListAuditEventsResponse)
    def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: grpc.ServicerContext
    ) -> pb.ListAuditEventsResponse:
        """One event whose actor is the authenticated caller."""
        assert self.authenticator is not None
        caller = self.authenticator.authenticate(context.invocation_metadata())
        actor = pb.Actor(user_id=caller.user_id, organization_id=caller.organization_id)
        return pb.ListAuditEventsResponse(
            page=pb.AuditEventPage(events=[pb.AuditEvent(actor=actor)])
        )

    def TailAuditEvents(
        self, request: pb.TailAuditEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.TailAuditEventsResponse]:
        """The scripted stream, marking its end: grpc_testing tells nothing of a cancelled call."""
        try:
            yield from self._tail(request, context)
        finally:
            self.over.set()

    @streaming(pb.TailAuditEventsResponse)
    def _tail(
        self, request: pb.TailAuditEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.TailAuditEventsResponse]:
        context.add_callback(self.client_left.set)
        return _Script(iter(self.stream), self.client_left)

    def IngestEvents(
        self, request_iterator: Iterator[pb.IngestEventsRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.IngestEventsResponse]:
        raise NotImplementedError  # not called here: tests/audit/test_ingest.py serves it for real


def _server(servicer: _Audit) -> Any:
    return grpc_testing.server_from_dictionary({SERVICE: servicer}, grpc_testing.strict_real_time())


def _unary(
    servicer: _Audit, metadata: Metadata = (), method: str = "VerifyChain"
) -> tuple[Any, dict[str, str], grpc.StatusCode]:
    """Call a unary method with an empty request: the response, trailing metadata and status."""
    descriptor = SERVICE.methods_by_name[method]
    request = getattr(pb, descriptor.input_type.name)()
    rpc = _server(servicer).invoke_unary_unary(descriptor, metadata, request, PATIENCE)
    response, trailing, code, _ = rpc.termination()
    return response, dict(trailing), code


def _tail(servicer: _Audit, metadata: Metadata = ()) -> Any:
    descriptor = SERVICE.methods_by_name["TailAuditEvents"]
    request = pb.TailAuditEventsRequest()
    return _server(servicer).invoke_unary_stream(descriptor, metadata, request, PATIENCE)


def _remaining(rpc: Any) -> list[Any]:
    """The responses not yet taken from a call that has ended."""
    taken = []
    while True:
        try:
            taken.append(rpc.take_response())
        except ValueError:  # grpc_testing's word for "ended, and nothing left"
            return taken


def _outcomes(method: str) -> Counter[str]:
    """The calls of one method counted so far, by outcome."""
    counts = calls.snapshot().items()
    return Counter({outcome: n for (name, outcome), n in counts if name == f"_Audit.{method}"})


APP_ERRORS = [
    kind()
    for kind in map(errors.__dict__.get, errors.__all__)
    if isinstance(kind, type) and issubclass(kind, errors.AppError)
    if kind not in (errors.AppError, errors.ValidationError)
]
INVALID_DATES = errors.ValidationError(
    [
        ("maturity_date", "MATURITY_NOT_AFTER_START", "must be after start_date"),
        ("currency_code", "CURRENCY_UNKNOWN", "is not an ISO 4217 code"),
    ]
)


@pytest.mark.parametrize("failure", [*APP_ERRORS, INVALID_DATES], ids=lambda e: type(e).__name__)
def test_each_app_error_becomes_its_envelope_error_with_status_ok(failure: errors.AppError) -> None:
    response, _, code = _unary(_Audit(failure=failure), ((REQUEST_ID_HEADER, "req-7"),))

    assert code is grpc.StatusCode.OK
    assert response.error == error_pb2.Error(
        code=error_pb2.ErrorCode.Value(f"ERROR_CODE_{failure.code.name}"),
        reason=failure.reason,
        message=failure.message,
        field_violations=[
            error_pb2.FieldViolation(field=v.field, description=v.description)
            for v in failure.field_violations
        ],
        request_id="req-7",
    )


def test_an_unexpected_failure_is_internal_says_nothing_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="loansuite.rpc")
    before = _outcomes("VerifyChain")

    response, trailing, code = _unary(_Audit(failure=RuntimeError("password=hunter2")))

    assert code is grpc.StatusCode.OK
    assert (response.error.code, response.error.reason) == (
        error_pb2.ERROR_CODE_INTERNAL,
        "INTERNAL",
    )
    assert "hunter2" not in str(response)
    assert response.error.request_id == trailing[REQUEST_ID_HEADER] != ""
    assert _outcomes("VerifyChain") - before == Counter(INTERNAL=1)
    logged = [r for r in caplog.records if r.getMessage() == "unexpected failure"]
    assert [str(r.exc_info[1]) for r in logged if r.exc_info] == ["password=hunter2"]


@pytest.mark.parametrize("failure", [None, errors.NotFoundError()], ids=["answer", "error"])
def test_the_request_id_sent_is_echoed_in_the_trailing_metadata_and_the_error(
    failure: Exception | None,
) -> None:
    response, trailing, _ = _unary(_Audit(failure=failure), ((REQUEST_ID_HEADER, "a-1"),))

    assert trailing[REQUEST_ID_HEADER] == "a-1"
    assert response.error.request_id == ("" if failure is None else "a-1")


@pytest.mark.parametrize("sent", [None, "has spaces", "x" * 129, "semi;colon"])
def test_a_request_id_is_made_up_when_absent_or_unacceptable(sent: str | None) -> None:
    metadata: Metadata = () if sent is None else ((REQUEST_ID_HEADER, sent),)
    made_up = []
    for _ in range(2):
        response, trailing, _ = _unary(_Audit(failure=errors.NotFoundError()), metadata)
        assert response.error.request_id == trailing[REQUEST_ID_HEADER]
        made_up.append(response.error.request_id)

    assert all(made_up)
    assert sent not in made_up
    assert made_up[0] != made_up[1]


@pytest.mark.parametrize(
    ("failure", "code_name", "reason", "message"),
    [
        (
            errors.NotFoundError("no such chain", reason="GONE"),
            "NOT_FOUND",
            "GONE",
            "no such chain",
        ),
        (RuntimeError("password=hunter2"), "INTERNAL", "INTERNAL", internal_error("").message),
    ],
    ids=["app-error", "unexpected"],
)
def test_an_error_ends_a_stream_with_one_last_error_response(
    failure: Exception, code_name: str, reason: str, message: str
) -> None:
    events = [pb.AuditEvent(event_id=f"e{n}") for n in range(3)]
    servicer = _Audit(stream=[events[0], events[1], failure, events[2]])

    rpc = _tail(servicer, ((REQUEST_ID_HEADER, "tail-1"),))
    trailing, code, _ = rpc.termination()

    error = error_pb2.Error(
        code=error_pb2.ErrorCode.Value(f"ERROR_CODE_{code_name}"),
        reason=reason,
        message=message,
        request_id="tail-1",
    )
    assert code is grpc.StatusCode.OK
    assert dict(trailing)[REQUEST_ID_HEADER] == "tail-1"
    assert _remaining(rpc) == [
        pb.TailAuditEventsResponse(event=events[0]),
        pb.TailAuditEventsResponse(event=events[1]),
        pb.TailAuditEventsResponse(error=error),
    ]


@pytest.mark.parametrize(
    "after_leaving",
    [[], [RuntimeError("read from a cancelled call")]],
    ids=["returns", "raises"],
)
def test_a_stream_the_client_cancels_ends_without_an_error_response(
    after_leaving: list[Step],
) -> None:
    servicer = _Audit(stream=[pb.AuditEvent(event_id="e0"), None, *after_leaving])
    rpc = _tail(servicer)
    first = rpc.take_response()
    before = _outcomes("_tail")

    rpc.cancel()

    assert servicer.over.wait(PATIENCE)
    assert first.event.event_id == "e0"
    assert _remaining(rpc) == []
    assert _outcomes("_tail") - before == Counter(CANCELLED=1)


class _Directory:
    """The user directory at the process boundary: the profiles auth would return."""

    def load(self, user_id: str) -> Caller:
        assert user_id == CALLER.user_id
        return CALLER


def _token(key: Ed25519PrivateKey = SIGNING_KEY, *, kid: str = KID, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": CALLER.user_id, "iat": now}
    payload |= {"exp": now + 300, "org": CALLER.organization_id, "role": CALLER.role.value}
    return jwt.encode(payload | claims, key, algorithm="EdDSA", headers={"kid": kid})


def _list_events(metadata: Metadata) -> tuple[pb.ListAuditEventsResponse, grpc.StatusCode]:
    """ListAuditEvents with the real Authenticator over an in-memory key ring."""
    keys = CachedKeyRing(lambda: {KID: SIGNING_KEY.public_key()})
    authenticator = Authenticator(
        TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE), _Directory()
    )
    metadata += ((REQUEST_ID_HEADER, "auth-1"),)
    response, _, code = _unary(_Audit(authenticator=authenticator), metadata, "ListAuditEvents")
    return response, code


def test_a_valid_token_reaches_the_method_as_its_caller() -> None:
    response, code = _list_events((("authorization", f"Bearer {_token()}"),))

    assert code is grpc.StatusCode.OK
    assert response.page.events[0].actor == pb.Actor(user_id="user-1", organization_id="org-1")


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (lambda: None, "TOKEN_MISSING"),
        (lambda: "Basic dXNlcjpwYXNz", "TOKEN_MALFORMED"),
        (lambda: "Bearer ", "TOKEN_MALFORMED"),
        (lambda: "Bearer not.a.token", "TOKEN_MALFORMED"),
        (lambda: f"Bearer {_token(exp=int(time.time()) - 3600)}", "TOKEN_EXPIRED"),
        (lambda: f"Bearer {_token(aud='elsewhere')}", "TOKEN_WRONG_AUDIENCE"),
        (lambda: f"Bearer {_token(Ed25519PrivateKey.generate())}", "TOKEN_BAD_SIGNATURE"),
        (lambda: f"Bearer {_token(kid='key-0')}", "TOKEN_UNKNOWN_KEY"),
    ],
    ids=["missing", "basic", "empty", "garbled", "expired", "audience", "signature", "kid"],
)
def test_an_unacceptable_token_is_an_unauthenticated_envelope(
    authorization: Callable[[], str | None], reason: str
) -> None:
    value = authorization()  # made now: a token made at collection could expire before the run
    metadata: Metadata = () if value is None else (("authorization", value),)

    response, code = _list_events(metadata)

    assert code is grpc.StatusCode.OK
    assert response.WhichOneof("result") == "error"
    assert (response.error.code, response.error.reason) == (
        error_pb2.ERROR_CODE_UNAUTHENTICATED,
        reason,
    )
    assert response.error.request_id == "auth-1"
