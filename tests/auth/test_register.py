"""Register: a borrower or lender with a new organization; never an admin, never twice."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from loansuite.auth.v1 import auth_service_pb2 as pb
from loansuite.common.v1 import error_pb2

from tests.auth.support import AuthService
from tests.support import PASSWORD


def request(**overrides: str | int) -> pb.RegisterRequest:
    message = pb.RegisterRequest(
        email=f"{uuid.uuid4().hex[:10]}@example.com",
        password=PASSWORD,
        name="Ada Lovelace",
        role=pb.USER_ROLE_BORROWER,
        organization_name="Analytical Engines Ltd",
    )
    for field, value in overrides.items():
        setattr(message, field, value)  # role may be a number outside the enum on purpose
    return message


@pytest.mark.parametrize(
    ("role", "organization_type"),
    [
        (pb.USER_ROLE_BORROWER, pb.ORGANIZATION_TYPE_BORROWER),
        (pb.USER_ROLE_LENDER, pb.ORGANIZATION_TYPE_LENDER),
    ],
)
def test_register_creates_user_and_organization_of_the_role(
    shared_auth: AuthService, role: int, organization_type: int
) -> None:
    local = uuid.uuid4().hex[:10]

    response = shared_auth.stub.Register(
        request(
            email=f"  {local}@Example.COM ", name=" Ada ", role=role, organization_name=" Acme "
        )
    )

    user = response.user
    assert response.WhichOneof("result") == "user"
    assert uuid.UUID(user.id).version == 4
    assert (user.email, user.name, user.role, user.active) == (
        f"{local}@example.com",
        "Ada",
        role,
        True,
    )
    assert uuid.UUID(user.organization.id).version == 4
    assert (user.organization.name, user.organization.type) == ("Acme", organization_type)
    assert user.create_time == user.update_time == user.organization.create_time
    assert user.create_time.seconds > 0


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("email", "", "EMAIL_REQUIRED"),
        ("email", "   ", "EMAIL_REQUIRED"),
        ("email", "not-an-email", "EMAIL_INVALID"),
        ("email", "ada@localhost", "EMAIL_INVALID"),
        ("email", "ada lovelace@example.com", "EMAIL_INVALID"),
        ("email", "a@b@example.com", "EMAIL_INVALID"),
        ("email", "a" * 243 + "@example.com", "EMAIL_INVALID"),  # 255 characters
        ("password", "", "PASSWORD_TOO_SHORT"),
        ("password", "12345678901", "PASSWORD_TOO_SHORT"),
        ("password", "p" * 257, "PASSWORD_TOO_LONG"),
        ("name", "", "NAME_REQUIRED"),
        ("name", " \t ", "NAME_REQUIRED"),
        ("name", "n" * 101, "NAME_TOO_LONG"),
        ("role", pb.USER_ROLE_UNSPECIFIED, "ROLE_REQUIRED"),
        ("role", pb.USER_ROLE_ADMIN, "ROLE_NOT_ALLOWED"),
        ("role", 99, "ROLE_INVALID"),
        ("organization_name", "", "ORGANIZATION_NAME_REQUIRED"),
        ("organization_name", "o" * 201, "ORGANIZATION_NAME_TOO_LONG"),
        # Text that would rewrite a terminal or reorder what a reader sees.
        ("name", "Eve\u001b[2J", "NAME_HAS_CONTROL_CHARACTERS"),
        ("name", "Eve\nMallory", "NAME_HAS_CONTROL_CHARACTERS"),
        ("name", "Eve \u202egnp.exe", "NAME_HAS_BIDI_CONTROLS"),
        ("organization_name", "Green\u0000Bank", "ORGANIZATION_NAME_HAS_CONTROL_CHARACTERS"),
        (
            "organization_name",
            "Solar\u001b[2J Park\u0007",
            "ORGANIZATION_NAME_HAS_CONTROL_CHARACTERS",
        ),
        ("organization_name", "Acme \u2066Bank\u2069", "ORGANIZATION_NAME_HAS_BIDI_CONTROLS"),
        ("email", "ada\u202e@example.com", "EMAIL_HAS_BIDI_CONTROLS"),
        ("email", "ada\u0085x@example.com", "EMAIL_HAS_CONTROL_CHARACTERS"),
    ],
)
def test_register_rejects_an_invalid_field(
    shared_auth: AuthService, field: str, value: str | int, reason: str
) -> None:
    response = shared_auth.stub.Register(request(**{field: value}))

    error = response.error
    assert response.WhichOneof("result") == "error"
    assert (error.code, error.reason) == (error_pb2.ERROR_CODE_INVALID_ARGUMENT, reason)
    assert [violation.field for violation in error.field_violations] == [field]
    assert error.field_violations[0].description
    assert error.message == f"invalid {field}"


def test_register_keeps_names_in_any_script(shared_auth: AuthService) -> None:
    response = shared_auth.stub.Register(
        request(name="Zoë Ødegård 👩\u200d💻", organization_name="شركة الطاقة الخضراء")
    )

    assert response.WhichOneof("result") == "user"
    assert response.user.name == "Zoë Ødegård 👩\u200d💻"
    assert response.user.organization.name == "شركة الطاقة الخضراء"


def test_register_names_every_invalid_field(shared_auth: AuthService) -> None:
    response = shared_auth.stub.Register(pb.RegisterRequest())

    assert response.error.code == error_pb2.ERROR_CODE_INVALID_ARGUMENT
    assert response.error.reason == "EMAIL_REQUIRED"  # the first violation gives the reason
    assert [v.field for v in response.error.field_violations] == [
        "email",
        "password",
        "name",
        "role",
        "organization_name",
    ]


def test_register_never_creates_an_admin(shared_auth: AuthService) -> None:
    email = f"{uuid.uuid4().hex[:10]}@example.com"

    refused = shared_auth.stub.Register(request(email=email, role=pb.USER_ROLE_ADMIN))
    login = shared_auth.stub.Login(pb.LoginRequest(email=email, password=PASSWORD))

    assert refused.error.code == error_pb2.ERROR_CODE_INVALID_ARGUMENT
    assert refused.error.reason == "ROLE_NOT_ALLOWED"
    assert login.error.reason == "INVALID_CREDENTIALS"  # nobody was created


def test_register_refuses_a_taken_email_in_any_case(shared_auth: AuthService) -> None:
    first = shared_auth.register()

    again = shared_auth.stub.Register(request(email=first.email.upper(), role=pb.USER_ROLE_LENDER))

    assert again.WhichOneof("result") == "error"
    assert again.error.code == error_pb2.ERROR_CODE_ALREADY_EXISTS
    assert again.error.reason == "EMAIL_TAKEN"


def test_racing_registrations_of_one_email_create_one_user(shared_auth: AuthService) -> None:
    email = f"{uuid.uuid4().hex[:10]}@example.com"

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(
            pool.map(lambda _: shared_auth.stub.Register(request(email=email)), range(4))
        )

    outcomes = sorted(r.WhichOneof("result") or "" for r in responses)
    assert outcomes == ["error", "error", "error", "user"]
    assert {r.error.reason for r in responses if r.HasField("error")} == {"EMAIL_TAKEN"}
    rows = shared_auth.sql("SELECT count(*) FROM users WHERE email = :email", email=email)
    assert rows == [(1,)]
