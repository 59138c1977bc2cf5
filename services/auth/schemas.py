"""Register validation: normalized email, password bounds, names, and a self-service role."""

from __future__ import annotations

import re
import unicodedata
from typing import Final

import pydantic
from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

from services.auth.common_passwords import is_common_password
from services.shared.errors import ValidationError
from services.shared.identity import Role
from services.shared.validation import check_characters, fail, text, validated

__all__ = [
    "NewAccount",
    "Registration",
    "lookup_email",
    "normalize_email",
    "parse_new_account",
    "parse_registration",
]

EMAIL_MAX_LENGTH: Final = 254  # RFC 5321's limit on a forward path
# NIST SP 800-63B: at least 12 characters when a password is the only factor, and
# room for long passphrases; the bound keeps Argon2's input (and its time) in reason.
PASSWORD_MIN_LENGTH: Final = 12
PASSWORD_MAX_LENGTH: Final = 256
NAME_MAX_LENGTH: Final = 100
ORGANIZATION_NAME_MAX_LENGTH: Final = 200

_ROLE_PREFIX: Final = "USER_ROLE_"
# Deliberately loose: one @, no spaces or control characters, a dot in the domain.
# Whether the mailbox exists is for a confirmation mail to find out, not a regex.
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f.]+")


def normalize_email(raw: str) -> str:
    """The form an email is stored and looked up in: stripped, lower-case, NFC."""
    return unicodedata.normalize("NFC", raw.strip().lower())


def lookup_email(raw: str) -> str:
    """An email to look up, normalized; hidden characters, which no stored email has, are
    refused on ``email`` (PostgreSQL could not even compare a NUL)."""
    email = normalize_email(raw)
    try:
        return check_characters(email, reason_prefix="EMAIL")
    except PydanticCustomError as exc:
        raise ValidationError([("email", exc.type, exc.message())]) from None


class NewAccount(BaseModel):
    """A valid user to create: normalized email, password within bounds, any role."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    email: str
    password: str = pydantic.Field(repr=False)
    name: str
    role: Role

    @field_validator("email", mode="plain")
    @classmethod
    def _email(cls, raw: str) -> str:
        email = normalize_email(raw)
        if not email:
            raise fail("EMAIL_REQUIRED", "is required")
        if len(email) > EMAIL_MAX_LENGTH:
            raise fail("EMAIL_INVALID", "must be an email address of at most 254 characters")
        # Before the shape: a control or bidi character gets its own reason.
        check_characters(email, reason_prefix="EMAIL")
        if not _EMAIL.fullmatch(email):
            raise fail("EMAIL_INVALID", "must be an email address of at most 254 characters")
        return email

    @field_validator("password", mode="plain")
    @classmethod
    def _password(cls, raw: str) -> str:
        # Never stripped, altered or checked for hidden characters: every character the
        # user typed counts, and a password is never shown to anyone.
        if len(raw) < PASSWORD_MIN_LENGTH:
            raise fail(
                "PASSWORD_TOO_SHORT", "must be at least {n} characters", n=PASSWORD_MIN_LENGTH
            )
        if len(raw) > PASSWORD_MAX_LENGTH:
            raise fail("PASSWORD_TOO_LONG", "must be at most {n} characters", n=PASSWORD_MAX_LENGTH)
        if is_common_password(raw):
            raise fail("PASSWORD_TOO_COMMON", "is a common or breached password; choose another")
        return raw

    @field_validator("name", mode="plain")
    @classmethod
    def _name(cls, raw: str) -> str:
        return text(raw, reason_prefix="NAME", limit=NAME_MAX_LENGTH)


class Registration(NewAccount):
    """A valid self-service registration: a borrower or lender with a new organization."""

    organization_name: str

    @field_validator("role", mode="plain")
    @classmethod
    def _role(cls, raw: str) -> Role:
        if raw in ("", f"{_ROLE_PREFIX}UNSPECIFIED"):
            raise fail("ROLE_REQUIRED", "is required")
        if raw == f"{_ROLE_PREFIX}ADMIN":
            # Admins come only from the operator command, never from the network.
            raise fail("ROLE_NOT_ALLOWED", "must be USER_ROLE_BORROWER or USER_ROLE_LENDER")
        if raw not in (f"{_ROLE_PREFIX}BORROWER", f"{_ROLE_PREFIX}LENDER"):
            raise fail("ROLE_INVALID", "must be USER_ROLE_BORROWER or USER_ROLE_LENDER")
        return Role(raw.removeprefix(_ROLE_PREFIX))

    @field_validator("organization_name", mode="plain")
    @classmethod
    def _organization_name(cls, raw: str) -> str:
        return text(raw, reason_prefix="ORGANIZATION_NAME", limit=ORGANIZATION_NAME_MAX_LENGTH)


# Every reason the validators above raise; any other pydantic error is a bug here.
_REASONS: Final = frozenset(
    {
        "EMAIL_REQUIRED",
        "EMAIL_INVALID",
        "EMAIL_HAS_CONTROL_CHARACTERS",
        "EMAIL_HAS_BIDI_CONTROLS",
        "PASSWORD_TOO_SHORT",
        "PASSWORD_TOO_LONG",
        "PASSWORD_TOO_COMMON",
        "NAME_REQUIRED",
        "NAME_TOO_LONG",
        "NAME_HAS_CONTROL_CHARACTERS",
        "NAME_HAS_BIDI_CONTROLS",
        "ROLE_REQUIRED",
        "ROLE_NOT_ALLOWED",
        "ROLE_INVALID",
        "ORGANIZATION_NAME_REQUIRED",
        "ORGANIZATION_NAME_TOO_LONG",
        "ORGANIZATION_NAME_HAS_CONTROL_CHARACTERS",
        "ORGANIZATION_NAME_HAS_BIDI_CONTROLS",
    }
)


def parse_registration(
    *, email: str, password: str, name: str, role: str, organization_name: str
) -> Registration:
    """Validate Register fields (role as its proto enum name); raise ValidationError."""
    fields = {"email": email, "password": password, "name": name, "role": role}
    return validated(Registration, {**fields, "organization_name": organization_name}, _REASONS)


def parse_new_account(*, email: str, password: str, name: str, role: Role) -> NewAccount:
    """Validate an operator-created account (any role); raise ValidationError."""
    fields = {"email": email, "password": password, "name": name, "role": role}
    return validated(NewAccount, fields, _REASONS)
