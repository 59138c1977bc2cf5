"""Authentication at the edge, served by grpc_testing: every refusal is an envelope error."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from loansuite.audit.v1 import audit_service_pb2 as pb
from loansuite.common.v1 import error_pb2

from services.shared.context import REQUEST_ID_HEADER
from services.shared.identity import Authenticator, CachedKeyRing, Caller, TokenVerifier
from tests.shared.envelope_support import (
    AUDIENCE,
    CALLER,
    ISSUER,
    KID,
    SIGNING_KEY,
    Metadata,
    ScriptedAudit,
    call_unary,
)


class _Directory:
    """The user directory at the process boundary: the profiles auth would return."""

    def __init__(self, *, remembers: bool = True) -> None:
        self.remembers = remembers

    def load(self, user_id: str) -> Caller:
        assert user_id == CALLER.user_id
        return CALLER

    def cached(self, user_id: str) -> bool:
        return self.remembers and user_id == CALLER.user_id


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
    response, _, code = call_unary(
        ScriptedAudit(authenticator=authenticator), metadata, "ListAuditEvents"
    )
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


def test_only_a_caller_already_known_is_answered_at_once() -> None:
    """What lets a read run on grpc.aio's event loop: no signature to check, nobody to ask."""
    keys = CachedKeyRing(lambda: {KID: SIGNING_KEY.public_key()})
    directory = _Directory()
    authenticator = Authenticator(TokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE), directory)
    metadata = (("authorization", f"Bearer {_token()}"),)

    assert not authenticator.answers_at_once(metadata)  # the signature is still to check
    assert authenticator.authenticate(metadata) == CALLER
    assert authenticator.answers_at_once(metadata)
    directory.remembers = False  # the profile expired: auth must be asked again
    assert not authenticator.answers_at_once(metadata)
    # Refused at once, without asking anyone: no token at all.
    assert authenticator.answers_at_once(())
