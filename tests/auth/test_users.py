"""GetUser, WhoAmI, ListPublicKeys and IssueServiceToken: who may see whom, and how."""

from __future__ import annotations

import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from loansuite.auth.v1 import auth_service_pb2 as pb
from loansuite.common.v1 import error_pb2

from services.shared._types import Metadata
from tests.auth.support import AuthService, Person, without_request_id
from tests.support import bearer


def get_user(service: AuthService, user_id: str, metadata: Metadata = ()) -> pb.GetUserResponse:
    return service.stub.GetUser(pb.GetUserRequest(user_id=user_id), metadata=metadata)


def test_a_user_reads_themself_with_organization(
    shared_auth: AuthService, borrower: Person
) -> None:
    response = get_user(shared_auth, borrower.user.id, borrower.bearer)

    assert response.WhichOneof("result") == "user"
    assert response.user == borrower.user
    assert response.user.organization.type == pb.ORGANIZATION_TYPE_BORROWER


def test_a_user_may_not_read_another_user(
    shared_auth: AuthService, borrower: Person, lender: Person
) -> None:
    other = get_user(shared_auth, lender.user.id, borrower.bearer)
    missing = get_user(shared_auth, str(uuid.uuid4()), borrower.bearer)

    assert other.error.code == error_pb2.ERROR_CODE_PERMISSION_DENIED
    # An id that does not exist answers the same: existence is not revealed.
    assert without_request_id(missing.error) == without_request_id(other.error)


def test_a_service_reads_any_user_even_deactivated(shared_auth: AuthService) -> None:
    person = shared_auth.person(pb.USER_ROLE_LENDER)
    shared_auth.sql("UPDATE users SET active = false WHERE id = :id", id=person.user.id)
    token = shared_auth.service_token("loans")

    response = get_user(shared_auth, person.user.id, bearer(token))
    whoami = shared_auth.stub.WhoAmI(pb.WhoAmIRequest(), metadata=person.bearer)

    assert response.WhichOneof("result") == "user"
    assert response.user.id == person.user.id
    assert response.user.organization.type == pb.ORGANIZATION_TYPE_LENDER
    assert response.user.active is False
    assert whoami.error.code == error_pb2.ERROR_CODE_UNAUTHENTICATED
    assert whoami.error.reason == "USER_INACTIVE"


def test_a_service_gets_not_found_for_an_unknown_id(shared_auth: AuthService) -> None:
    response = get_user(shared_auth, str(uuid.uuid4()), bearer(shared_auth.service_token()))

    assert response.error.code == error_pb2.ERROR_CODE_NOT_FOUND
    assert response.error.reason == "USER_NOT_FOUND"


def test_an_admin_reads_any_user(shared_auth: AuthService, admin: Person, lender: Person) -> None:
    response = get_user(shared_auth, lender.user.id, admin.bearer)

    assert response.user == lender.user
    assert admin.user.role == pb.USER_ROLE_ADMIN
    assert admin.user.organization.type == pb.ORGANIZATION_TYPE_PLATFORM


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((), "TOKEN_MISSING"),
        ((("authorization", "Basic dXNlcjpwYXNz"),), "TOKEN_MALFORMED"),
        ((("authorization", "Bearer not.a.jwt"),), "TOKEN_MALFORMED"),
    ],
)
def test_get_user_needs_a_valid_bearer_token(
    shared_auth: AuthService, borrower: Person, metadata: Metadata, reason: str
) -> None:
    response = get_user(shared_auth, borrower.user.id, metadata)

    assert response.error.code == error_pb2.ERROR_CODE_UNAUTHENTICATED
    assert response.error.reason == reason


def test_a_token_from_a_foreign_key_is_refused(shared_auth: AuthService, borrower: Person) -> None:
    claims = jwt.decode(borrower.session.access_token, options={"verify_signature": False})
    header = jwt.get_unverified_header(borrower.session.access_token)
    forged = jwt.encode(
        claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": header["kid"]}
    )

    response = get_user(shared_auth, borrower.user.id, bearer(forged))

    assert response.error.reason == "TOKEN_BAD_SIGNATURE"


def test_whoami_answers_the_caller(shared_auth: AuthService, lender: Person) -> None:
    response = shared_auth.stub.WhoAmI(pb.WhoAmIRequest(), metadata=lender.bearer)

    assert response.user == lender.user


def test_whoami_refuses_a_service_identity(shared_auth: AuthService) -> None:
    token = shared_auth.service_token()

    response = shared_auth.stub.WhoAmI(pb.WhoAmIRequest(), metadata=bearer(token))

    assert response.error.code == error_pb2.ERROR_CODE_PERMISSION_DENIED
    assert response.error.reason == "NOT_A_USER"


def test_list_public_keys_needs_no_token(shared_auth: AuthService) -> None:
    response = shared_auth.stub.ListPublicKeys(pb.ListPublicKeysRequest())

    (key,) = response.key_set.keys
    assert key.algorithm == "EdDSA"
    assert len(key.kid) == 43  # base64url SHA-256 thumbprint
    assert isinstance(load_pem_public_key(key.public_key_pem.encode()), Ed25519PublicKey)
    assert "PRIVATE" not in key.public_key_pem
    assert key.create_time.seconds > 0


def test_issue_service_token_with_the_secret(shared_auth: AuthService) -> None:
    request = pb.IssueServiceTokenRequest(
        service_name="loans", service_secret=shared_auth.settings.resolved_service_secret()
    )

    response = shared_auth.stub.IssueServiceToken(request)

    claims = jwt.decode(response.token.access_token, options={"verify_signature": False})
    assert (claims["sub"], claims["role"], claims["org"]) == ("service:loans", "SERVICE", "")
    assert response.token.expire_time.seconds == claims["exp"]


@pytest.mark.parametrize(
    ("name", "secret", "code", "reason"),
    [
        ("loans", "wrong", error_pb2.ERROR_CODE_UNAUTHENTICATED, "SERVICE_SECRET_INVALID"),
        ("loans", "", error_pb2.ERROR_CODE_UNAUTHENTICATED, "SERVICE_SECRET_INVALID"),
        ("", None, error_pb2.ERROR_CODE_INVALID_ARGUMENT, "SERVICE_NAME_INVALID"),
        ("Loans", None, error_pb2.ERROR_CODE_INVALID_ARGUMENT, "SERVICE_NAME_INVALID"),
        ("9lives", None, error_pb2.ERROR_CODE_INVALID_ARGUMENT, "SERVICE_NAME_INVALID"),
        ("a" * 33, None, error_pb2.ERROR_CODE_INVALID_ARGUMENT, "SERVICE_NAME_INVALID"),
        ("loans\n", None, error_pb2.ERROR_CODE_INVALID_ARGUMENT, "SERVICE_NAME_INVALID"),
    ],
)
def test_issue_service_token_refuses(
    shared_auth: AuthService, name: str, secret: str | None, code: int, reason: str
) -> None:
    real_secret = shared_auth.settings.resolved_service_secret()
    request = pb.IssueServiceTokenRequest(
        service_name=name, service_secret=real_secret if secret is None else secret
    )

    response = shared_auth.stub.IssueServiceToken(request)

    assert (response.error.code, response.error.reason) == (code, reason)
