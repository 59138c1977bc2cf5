"""Login, RefreshSession and Logout: tokens that verify, rotate and die."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from loansuite.auth.v1 import auth_service_pb2 as pb
from loansuite.common.v1 import error_pb2
from sqlalchemy import update

from services.auth import passwords
from services.auth.models import RefreshToken
from services.auth.passwords import needs_rehash
from services.auth.tokens import refresh_token_hash
from tests.auth.support import AuthService, Person, without_request_id
from tests.support import PASSWORD


def refresh(service: AuthService, token: str) -> pb.RefreshSessionResponse:
    return service.stub.RefreshSession(pb.RefreshSessionRequest(refresh_token=token))


def test_login_returns_a_session_whose_token_verifies(
    shared_auth: AuthService, borrower: Person
) -> None:
    before = int(time.time())
    session = shared_auth.log_in(f"  {borrower.user.email.upper()} ")  # normalized like Register
    keys = shared_auth.stub.ListPublicKeys(pb.ListPublicKeysRequest()).key_set.keys

    header = jwt.get_unverified_header(session.access_token)
    (key,) = [k for k in keys if k.kid == header["kid"]]
    public_key = load_pem_public_key(key.public_key_pem.encode())
    assert isinstance(public_key, Ed25519PublicKey)
    claims = jwt.decode(
        session.access_token,
        public_key,
        algorithms=["EdDSA"],
        issuer="loansuite-auth",
        audience="loansuite",
    )
    assert header["alg"] == key.algorithm == "EdDSA"
    assert claims["sub"] == borrower.user.id
    assert claims["org"] == borrower.user.organization.id
    assert claims["role"] == "BORROWER"
    assert claims["jti"]
    assert before - 1 <= claims["iat"] <= time.time()
    assert claims["exp"] - claims["iat"] == 900
    assert session.access_token_expire_time.seconds == claims["exp"]
    refresh_ttl = session.refresh_token_expire_time.seconds - claims["iat"]
    assert refresh_ttl == pytest.approx(14 * 24 * 3600, abs=2)
    assert len(session.refresh_token) >= 43
    assert session.user == borrower.user


def test_lender_token_carries_the_lender_role(shared_auth: AuthService, lender: Person) -> None:
    claims = jwt.decode(lender.session.access_token, options={"verify_signature": False})

    assert claims["role"] == "LENDER"
    assert lender.session.user.role == pb.USER_ROLE_LENDER


def test_wrong_password_and_unknown_email_answer_the_same(
    shared_auth: AuthService, borrower: Person
) -> None:
    wrong = shared_auth.stub.Login(
        pb.LoginRequest(email=borrower.user.email, password="not the password")
    )
    unknown = shared_auth.stub.Login(
        pb.LoginRequest(email="nobody-at-all@example.com", password=PASSWORD)
    )
    empty = shared_auth.stub.Login(pb.LoginRequest())

    assert wrong.error.code == error_pb2.ERROR_CODE_UNAUTHENTICATED
    assert wrong.error.reason == "INVALID_CREDENTIALS"
    assert wrong.error.request_id != unknown.error.request_id
    assert without_request_id(wrong.error) == without_request_id(unknown.error)
    assert without_request_id(empty.error) == without_request_id(unknown.error)


def test_a_deactivated_user_cannot_log_in_and_is_told_nothing_more(
    shared_auth: AuthService,
) -> None:
    person = shared_auth.person()
    shared_auth.sql("UPDATE users SET active = false WHERE id = :id", id=person.user.id)

    refused = shared_auth.stub.Login(pb.LoginRequest(email=person.user.email, password=PASSWORD))
    refreshed = refresh(shared_auth, person.session.refresh_token)

    assert refused.error.reason == "INVALID_CREDENTIALS"
    assert refused.error.message == "invalid email or password"
    assert refreshed.error.reason == "REFRESH_TOKEN_INVALID"


def test_refresh_rotates_the_refresh_token(shared_auth: AuthService, borrower: Person) -> None:
    first = shared_auth.log_in(borrower.user.email)

    second = refresh(shared_auth, first.refresh_token)
    third = refresh(shared_auth, second.session.refresh_token)
    replay = refresh(shared_auth, first.refresh_token)  # revokes the family: see test_families

    assert second.WhichOneof("result") == "session"
    assert second.session.refresh_token != first.refresh_token
    assert second.session.access_token != first.access_token
    assert second.session.user == borrower.user
    assert third.WhichOneof("result") == "session"
    assert replay.error.code == error_pb2.ERROR_CODE_UNAUTHENTICATED
    assert replay.error.reason == "REFRESH_TOKEN_INVALID"


@pytest.mark.parametrize("token", ["", "not-a-token", "x" * 43])
def test_refresh_rejects_unknown_tokens(shared_auth: AuthService, token: str) -> None:
    response = refresh(shared_auth, token)

    assert response.error.code == error_pb2.ERROR_CODE_UNAUTHENTICATED
    assert response.error.reason == "REFRESH_TOKEN_INVALID"


def test_refresh_rejects_an_expired_token(shared_auth: AuthService, borrower: Person) -> None:
    session = shared_auth.log_in(borrower.user.email)
    past = datetime.now(UTC) - timedelta(seconds=1)
    shared_auth.sql(
        update(RefreshToken)
        .where(RefreshToken.token_hash == refresh_token_hash(session.refresh_token))
        .values(expire_time=past)
    )

    response = refresh(shared_auth, session.refresh_token)

    assert response.error.reason == "REFRESH_TOKEN_INVALID"


def test_logout_revokes_the_refresh_token_and_is_idempotent(
    shared_auth: AuthService, borrower: Person
) -> None:
    session = shared_auth.log_in(borrower.user.email)
    request = pb.LogoutRequest(refresh_token=session.refresh_token)

    first = shared_auth.stub.Logout(request)
    refreshed = refresh(shared_auth, session.refresh_token)
    second = shared_auth.stub.Logout(request)
    unknown = shared_auth.stub.Logout(pb.LogoutRequest(refresh_token="never-issued"))

    assert first.WhichOneof("result") == "logged_out"
    assert abs(first.logged_out.logout_time.seconds - time.time()) < 5
    assert refreshed.error.reason == "REFRESH_TOKEN_INVALID"
    assert second.WhichOneof("result") == "logged_out"
    assert unknown.WhichOneof("result") == "logged_out"


def test_logout_needs_a_token(shared_auth: AuthService) -> None:
    response = shared_auth.stub.Logout(pb.LogoutRequest())

    assert response.error.code == error_pb2.ERROR_CODE_INVALID_ARGUMENT
    assert response.error.reason == "REFRESH_TOKEN_REQUIRED"
    assert [v.field for v in response.error.field_violations] == ["refresh_token"]


def test_login_upgrades_an_outdated_password_hash(shared_auth: AuthService) -> None:
    user = shared_auth.register()
    outdated = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    shared_auth.sql(
        "UPDATE users SET password_hash = :hash WHERE id = :id", hash=outdated, id=user.id
    )

    shared_auth.log_in(user.email)

    ((stored,),) = shared_auth.sql("SELECT password_hash FROM users WHERE id = :id", id=user.id)
    assert isinstance(stored, str)
    assert stored != outdated
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert not needs_rehash(stored)
    assert shared_auth.log_in(user.email).user.id == user.id  # the new hash still verifies


def test_an_unknown_email_costs_a_password_verification(
    shared_auth: AuthService, borrower: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real verifier runs; this only records which stored hashes it was asked to check.
    checked: list[str] = []
    verify = passwords.verify_password

    def recording(password_hash: str, password: str) -> bool:
        checked.append(password_hash)
        return verify(password_hash, password)

    monkeypatch.setattr(passwords, "verify_password", recording)
    for email in (borrower.user.email, "nobody-here@example.com"):
        response = shared_auth.stub.Login(pb.LoginRequest(email=email, password="not the password"))
        assert response.error.reason == "INVALID_CREDENTIALS"

    # Both answers cost one full Argon2id verification at today's parameters: an unknown
    # email is not told apart by answering faster.
    real, dummy = checked
    assert real != dummy
    assert not needs_rehash(real)
    assert not needs_rehash(dummy)
