"""Register validation: normalized email, password bounds, names, and a self-service role."""

from __future__ import annotations

import re
from typing import Any, Final, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from services.shared.errors import ValidationError
from services.shared.identity import Role

__all__ = [
    "NewAccount",
    "Registration",
    "normalize_email",
    "parse_new_account",
    "parse_registration",
]

EMAIL_MAX_LENGTH: Final = 254  # RFC 5321's limit on a forward path
PASSWORD_MIN_LENGTH: Final = 8
PASSWORD_MAX_LENGTH: Final = 128
NAME_MAX_LENGTH: Final = 100
ORGANIZATION_NAME_MAX_LENGTH: Final = 200

_ROLE_PREFIX: Final = "USER_ROLE_"
# Deliberately loose: one @, no spaces or control characters, a dot in the domain.
# Whether the mailbox exists is for a confirmation mail to find out, not a regex.
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f.]+")


def _fail(reason: str, description: str, **ctx: Any) -> PydanticCustomError:
    # The reason is the error type, so translating a pydantic error is a lookup.
    return PydanticCustomError(reason, description, ctx or None)


def normalize_email(raw: str) -> str:
    """The form an email is stored and looked up in: stripped and lower-case."""
    return raw.strip().lower()


def _text(raw: str, *, field: str, limit: int) -> str:
    text = raw.strip()
    if not text:
        raise _fail(f"{field}_REQUIRED", "is required")
    if len(text) > limit:
        raise _fail(f"{field}_TOO_LONG", "must be at most {n} characters", n=limit)
    return text


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
            raise _fail("EMAIL_REQUIRED", "is required")
        if len(email) > EMAIL_MAX_LENGTH or not _EMAIL.fullmatch(email):
            raise _fail("EMAIL_INVALID", "must be an email address of at most 254 characters")
        return email

    @field_validator("password", mode="plain")
    @classmethod
    def _password(cls, raw: str) -> str:
        # Never stripped or altered: every character the user typed counts.
        if len(raw) < PASSWORD_MIN_LENGTH:
            raise _fail(
                "PASSWORD_TOO_SHORT", "must be at least {n} characters", n=PASSWORD_MIN_LENGTH
            )
        if len(raw) > PASSWORD_MAX_LENGTH:
            raise _fail(
                "PASSWORD_TOO_LONG", "must be at most {n} characters", n=PASSWORD_MAX_LENGTH
            )
        return raw

    @field_validator("name", mode="plain")
    @classmethod
    def _name(cls, raw: str) -> str:
        return _text(raw, field="NAME", limit=NAME_MAX_LENGTH)


class Registration(NewAccount):
    """A valid self-service registration: a borrower or lender with a new organization."""

    organization_name: str

    @field_validator("role", mode="plain")
    @classmethod
    def _role(cls, raw: str) -> Role:
        if raw in ("", f"{_ROLE_PREFIX}UNSPECIFIED"):
            raise _fail("ROLE_REQUIRED", "is required")
        if raw == f"{_ROLE_PREFIX}ADMIN":
            # Admins come only from the operator command, never from the network.
            raise _fail("ROLE_NOT_ALLOWED", "must be USER_ROLE_BORROWER or USER_ROLE_LENDER")
        if raw not in (f"{_ROLE_PREFIX}BORROWER", f"{_ROLE_PREFIX}LENDER"):
            raise _fail("ROLE_INVALID", "must be USER_ROLE_BORROWER or USER_ROLE_LENDER")
        return Role(raw.removeprefix(_ROLE_PREFIX))

    @field_validator("organization_name", mode="plain")
    @classmethod
    def _organization_name(cls, raw: str) -> str:
        return _text(raw, field="ORGANIZATION_NAME", limit=ORGANIZATION_NAME_MAX_LENGTH)


# Every reason the validators above raise; any other pydantic error is a bug here.
_REASONS: Final = frozenset(
    {
        "EMAIL_REQUIRED",
        "EMAIL_INVALID",
        "PASSWORD_TOO_SHORT",
        "PASSWORD_TOO_LONG",
        "NAME_REQUIRED",
        "NAME_TOO_LONG",
        "ROLE_REQUIRED",
        "ROLE_NOT_ALLOWED",
        "ROLE_INVALID",
        "ORGANIZATION_NAME_REQUIRED",
        "ORGANIZATION_NAME_TOO_LONG",
    }
)


_Model = TypeVar("_Model", bound=BaseModel)


def _violation(error: ErrorDetails) -> tuple[str, str, str]:
    return str(error["loc"][0]), error["type"], error["msg"]


def _validate(model: type[_Model], fields: dict[str, Any]) -> _Model:
    try:
        return model.model_validate(fields)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(error["type"] not in _REASONS for error in errors):
            raise  # surfaces as INTERNAL: this module raised something it does not name
        raise ValidationError([_violation(error) for error in errors]) from None


def parse_registration(
    *, email: str, password: str, name: str, role: str, organization_name: str
) -> Registration:
    """Validate Register fields (role as its proto enum name); raise ValidationError."""
    fields = {"email": email, "password": password, "name": name, "role": role}
    return _validate(Registration, {**fields, "organization_name": organization_name})


def parse_new_account(*, email: str, password: str, name: str, role: Role) -> NewAccount:
    """Validate an operator-created account (any role); raise ValidationError."""
    return _validate(NewAccount, {"email": email, "password": password, "name": name, "role": role})
