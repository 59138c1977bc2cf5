"""FindUserByEmail for service identities, and the loans service's client of it."""

from __future__ import annotations

import grpc
from loansuite.auth.v1 import auth_service_pb2 as pb
from loansuite.auth.v1 import auth_service_pb2_grpc as pb_grpc
from loansuite.common.v1 import error_pb2

from services.shared._types import Metadata
from services.shared.auth_client import DirectoryUser, RemoteUserFinder, ServiceCredentials
from services.shared.identity import Role
from tests.auth.support import AuthService, Person
from tests.support import bearer


def find(service: AuthService, email: str, metadata: Metadata) -> pb.FindUserByEmailResponse:
    return service.stub.FindUserByEmail(pb.FindUserByEmailRequest(email=email), metadata=metadata)


def test_a_service_finds_a_user_by_email_with_organization(
    shared_auth: AuthService, lender: Person
) -> None:
    token = shared_auth.service_token("loans")

    exact = find(shared_auth, lender.user.email, bearer(token))
    loose = find(shared_auth, f"  {lender.user.email.upper()} ", bearer(token))

    assert exact.WhichOneof("result") == "user"
    assert exact.user == lender.user
    assert exact.user.organization.id
    assert loose.user == lender.user


def test_a_user_token_may_not_look_users_up(
    shared_auth: AuthService, borrower: Person, lender: Person
) -> None:
    response = find(shared_auth, lender.user.email, borrower.bearer)

    assert response.error.code == error_pb2.ERROR_CODE_PERMISSION_DENIED
    assert response.error.reason == "SERVICE_IDENTITY_REQUIRED"


def test_an_unknown_or_deactivated_email_is_not_found(shared_auth: AuthService) -> None:
    gone = shared_auth.person(pb.USER_ROLE_LENDER)
    shared_auth.sql("UPDATE users SET active = false WHERE id = :id", id=gone.user.id)
    token = shared_auth.service_token()

    unknown = find(shared_auth, "nobody-here@example.com", bearer(token))
    deactivated = find(shared_auth, gone.user.email, bearer(token))

    assert (unknown.error.code, unknown.error.reason) == (
        error_pb2.ERROR_CODE_NOT_FOUND,
        "USER_NOT_FOUND",
    )
    assert (deactivated.error.code, deactivated.error.reason) == (
        error_pb2.ERROR_CODE_NOT_FOUND,
        "USER_NOT_FOUND",
    )


def test_the_remote_finder_answers_a_profile_or_none(
    shared_auth: AuthService, lender: Person
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{shared_auth.server.port}") as channel:
        stub = pb_grpc.AuthServiceStub(channel)
        credentials = ServiceCredentials(
            stub, service_name="loans", secret=shared_auth.settings.resolved_service_secret()
        )
        finder = RemoteUserFinder(stub, credentials)

        found = finder.find_by_email(lender.user.email)
        missing = finder.find_by_email("nobody-here@example.com")

    assert found == DirectoryUser(lender.user.id, Role.LENDER, lender.user.organization.id)
    assert missing is None
