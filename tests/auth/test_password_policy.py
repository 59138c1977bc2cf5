"""Register's password rules (NIST SP 800-63B): 12 to 256 characters, never a common one."""

from __future__ import annotations

import uuid

import pytest
from loansuite.auth.v1 import auth_service_pb2 as pb
from loansuite.common.v1 import error_pb2

from services.auth.common_passwords import is_common_password, load_common_passwords
from services.auth.schemas import parse_new_account
from services.shared.errors import ValidationError
from services.shared.identity import Role
from tests.auth.support import AuthService


def register(auth: AuthService, password: str) -> pb.RegisterResponse:
    return auth.stub.Register(
        pb.RegisterRequest(
            email=f"{uuid.uuid4().hex[:10]}@example.com",
            password=password,
            name="Ada Lovelace",
            role=pb.USER_ROLE_BORROWER,
            organization_name="Analytical Engines Ltd",
        )
    )


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("password", "PASSWORD_TOO_SHORT"),  # the examples are short as well as common
        ("12345678", "PASSWORD_TOO_SHORT"),
        ("qwertyuiop", "PASSWORD_TOO_SHORT"),
        ("12345678901", "PASSWORD_TOO_SHORT"),
        ("password1234", "PASSWORD_TOO_COMMON"),
        ("PassWord1234", "PASSWORD_TOO_COMMON"),  # compared without case
        ("Password 1234", "PASSWORD_TOO_COMMON"),  # and without spaces
        ("1qaz2wsx3edc", "PASSWORD_TOO_COMMON"),
        ("x" * 257, "PASSWORD_TOO_LONG"),
    ],
)
def test_a_weak_password_is_refused_on_the_password_field(
    shared_auth: AuthService, password: str, reason: str
) -> None:
    response = register(shared_auth, password)

    assert response.error.code == error_pb2.ERROR_CODE_INVALID_ARGUMENT
    assert response.error.reason == reason
    assert [(v.field, bool(v.description)) for v in response.error.field_violations] == [
        ("password", True)
    ]
    assert password not in response.error.field_violations[0].description


@pytest.mark.parametrize("password", ["a" * 12, "correct horse battery", "é" * 256])
def test_a_long_enough_uncommon_password_is_accepted(
    shared_auth: AuthService, password: str
) -> None:
    assert register(shared_auth, password).WhichOneof("result") == "user"


def test_operator_created_admins_follow_the_same_rules() -> None:
    with pytest.raises(ValidationError) as refused:
        parse_new_account(
            email="root@example.com", password="qazwsxedcrfv", name="Root", role=Role.ADMIN
        )

    assert refused.value.reasons == {"password": "PASSWORD_TOO_COMMON"}


def test_the_list_comes_from_the_maintained_package() -> None:
    common = load_common_passwords()

    assert len(common) >= 25_000
    assert is_common_password("LetMeIn")
    assert not is_common_password("correct horse battery")
