"""Register validation without a server: boundaries, normalization, untouched passwords."""

from __future__ import annotations

import pytest

from services.auth.schemas import parse_new_account, parse_registration
from services.shared.errors import ValidationError
from services.shared.identity import Role

VALID = {
    "email": "ada@example.com",
    "password": "correct horse",
    "name": "Ada",
    "role": "USER_ROLE_LENDER",
    "organization_name": "Acme",
}


def test_valid_registration_is_normalized() -> None:
    registration = parse_registration(
        **{**VALID, "email": "  Ada@Example.COM\t", "name": " Ada ", "organization_name": " Acme "}
    )

    assert registration.email == "ada@example.com"
    assert (registration.name, registration.organization_name) == ("Ada", "Acme")
    assert registration.role is Role.LENDER


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("password", "p" * 12),
        ("password", "p" * 256),
        ("password", "  spaced out  "),
        ("email", "a" * 242 + "@example.com"),  # 254 characters
        ("email", "ädä@exämple.com"),
        ("name", "n" * 100),
        ("organization_name", "o" * 200),
        ("role", "USER_ROLE_BORROWER"),
    ],
)
def test_boundary_values_are_accepted(field: str, value: str) -> None:
    registration = parse_registration(**{**VALID, field: value})

    assert getattr(registration, field) in (value, Role.BORROWER)


def test_the_password_is_kept_exactly_and_never_shown() -> None:
    registration = parse_registration(**{**VALID, "password": "  Tr1cky passphrase  "})

    assert registration.password == "  Tr1cky passphrase  "
    assert "Tr1cky" not in repr(registration)


def test_violations_do_not_echo_the_input() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_registration(**{**VALID, "password": "hunter2"})

    assert caught.value.reasons == {"password": "PASSWORD_TOO_SHORT"}
    assert "hunter2" not in str(caught.value.field_violations)


def test_an_operator_account_may_be_an_admin() -> None:
    account = parse_new_account(
        email="Root@Example.com", password="correct horse", name="Root", role=Role.ADMIN
    )

    assert (account.email, account.role) == ("root@example.com", Role.ADMIN)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("name", "Eve\u001b[2J", "NAME_HAS_CONTROL_CHARACTERS"),
        ("name", "Root\u202e", "NAME_HAS_BIDI_CONTROLS"),
        ("email", "root\u200f@example.com", "EMAIL_HAS_BIDI_CONTROLS"),
    ],
)
def test_an_operator_account_refuses_hidden_characters_too(
    field: str, value: str, reason: str
) -> None:
    fields = {"email": "root@example.com", "password": "correct horse", "name": "Root"}
    with pytest.raises(ValidationError) as caught:
        parse_new_account(**{**fields, field: value}, role=Role.ADMIN)

    assert caught.value.reasons == {field: reason}


def test_surrounding_whitespace_is_stripped_before_characters_are_checked() -> None:
    registration = parse_registration(
        **{**VALID, "name": "\tAda\n", "organization_name": " Acme\r\n"}
    )

    assert (registration.name, registration.organization_name) == ("Ada", "Acme")


def test_a_password_may_hold_any_character() -> None:
    password = "tab\there \u202e \u0000 end"

    assert parse_registration(**{**VALID, "password": password}).password == password
