"""One error table: Code, the exception classes and the wire's ErrorCode agree, both ways.

An error that another service answers comes back as the class its callers catch;
the last tests check that through a real auth server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from loansuite.auth.v1 import auth_service_pb2 as pb
from loansuite.common.v1 import error_pb2

from services.shared import errors
from services.shared.auth_client import RemoteUserDirectory, ServiceCredentials, _call
from services.shared.context import outgoing_metadata
from services.shared.envelope import (
    code_from_proto,
    code_to_proto,
    error_from_message,
    error_message,
)
from services.shared.errors import (
    ERROR_CLASSES,
    AppError,
    Code,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    UnauthenticatedError,
    ValidationError,
    Violation,
    error_for,
)
from tests.auth.support import AuthService, auth_settings, running
from tests.support import Databases

PREFIX = "ERROR_CODE_"
WIRE_NAMES = [name for name, _ in error_pb2.ErrorCode.items() if name != "ERROR_CODE_UNSPECIFIED"]
VIOLATIONS = (
    FieldViolation("maturity_date", "must be after start_date"),
    FieldViolation("amount", "must be positive"),
)


@pytest.mark.parametrize("wire_name", WIRE_NAMES)
def test_every_wire_code_has_a_code_of_the_same_name_and_value_with_a_class(
    wire_name: str,
) -> None:
    wire = error_pb2.ErrorCode.Value(wire_name)

    code = Code[wire_name.removeprefix(PREFIX)]

    assert code.value == wire
    assert code_to_proto(code) == wire
    assert code_from_proto(wire) is code
    assert issubclass(ERROR_CLASSES[code], AppError)


@pytest.mark.parametrize("code", list(Code))
def test_every_code_has_a_wire_code_and_a_class_that_carries_it(code: Code) -> None:
    assert PREFIX + code.name in WIRE_NAMES
    assert ERROR_CLASSES[code].code is code


def test_each_error_class_is_reached_by_its_own_code() -> None:
    classes = [
        value
        for value in (getattr(errors, name) for name in errors.__all__)
        if isinstance(value, type) and issubclass(value, AppError)
    ]

    # A refinement such as ValidationError travels as the class of its code.
    unreached = [cls for cls in classes if not issubclass(cls, ERROR_CLASSES[cls.code])]
    tabled = [cls for cls in classes if ERROR_CLASSES[cls.code] is cls]

    assert unreached == []
    assert sorted(cls.__name__ for cls in tabled) == sorted(
        cls.__name__ for cls in ERROR_CLASSES.values()
    )
    assert InvalidArgumentError in tabled
    assert ValidationError not in tabled


def test_the_internal_code_is_the_base_class() -> None:
    assert ERROR_CLASSES[Code.INTERNAL] is AppError


@pytest.mark.parametrize("code", list(Code))
def test_a_round_trip_keeps_class_reason_message_and_field_violations(code: Code) -> None:
    sent = error_for(code, "it went wrong", reason="SPECIFIC", field_violations=VIOLATIONS)
    wire = error_pb2.Error.FromString(error_message(sent, "req-1").SerializeToString())

    received = error_from_message(wire)

    assert error_pb2.ErrorCode.Name(wire.code) == PREFIX + code.name
    assert type(received) is type(sent) is ERROR_CLASSES[code]
    assert received.code is code
    assert (received.reason, received.message) == ("SPECIFIC", "it went wrong")
    assert received.field_violations == VIOLATIONS


def test_a_validation_error_arrives_as_invalid_argument_with_its_violations() -> None:
    sent = ValidationError(
        [
            ("maturity_date", "MATURITY_NOT_AFTER_START", "must be after start_date"),
            Violation("amount", "AMOUNT_NOT_POSITIVE", "must be positive"),
        ]
    )

    received = error_from_message(error_message(sent, "req-2"))

    assert type(received) is InvalidArgumentError
    assert received.reason == "MATURITY_NOT_AFTER_START"
    assert received.message == "invalid request fields"
    assert received.field_violations == VIOLATIONS


def test_a_validation_error_keeps_each_violation_as_a_record() -> None:
    error = ValidationError([("amount", "AMOUNT_NOT_POSITIVE", "must be positive")])

    assert error.violations == (Violation("amount", "AMOUNT_NOT_POSITIVE", "must be positive"),)
    assert error.violations[0].reason == "AMOUNT_NOT_POSITIVE"
    assert error.reasons == {"amount": "AMOUNT_NOT_POSITIVE"}
    assert error.field_violations == (FieldViolation("amount", "must be positive"),)


def test_an_unspecified_wire_code_arrives_as_internal() -> None:
    wire = error_pb2.Error(
        code=error_pb2.ERROR_CODE_UNSPECIFIED, reason="ODD", message="an unclassified outcome"
    )

    received = error_from_message(wire)

    assert type(received) is AppError
    assert received.code is Code.INTERNAL
    assert (received.reason, received.message) == ("ODD", "an unclassified outcome")


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthService]:
    """A real auth server; the conversion under test does not depend on the backend."""
    directory = tmp_path_factory.mktemp("errors-auth")
    with running(auth_settings(directory, Databases("sqlite", directory).new("auth"))) as service:
        yield service


def credentials_for(auth: AuthService, secret: str | None = None) -> ServiceCredentials:
    return ServiceCredentials(
        auth.stub,
        service_name="loans",
        secret=auth.settings.resolved_service_secret() if secret is None else secret,
    )


def test_not_found_raised_by_auth_arrives_as_not_found_error(auth: AuthService) -> None:
    token = credentials_for(auth).token()

    with pytest.raises(NotFoundError) as caught:
        _call(
            auth.stub.GetUser,
            pb.GetUserRequest(user_id=str(uuid.uuid4())),
            metadata=outgoing_metadata(bearer=token),
        )

    assert caught.value.code is Code.NOT_FOUND
    assert caught.value.reason == "USER_NOT_FOUND"
    assert caught.value.message == "no user has this id"


def test_the_directory_catches_an_unknown_user_by_class(auth: AuthService) -> None:
    directory = RemoteUserDirectory(auth.stub, credentials_for(auth), ttl=60)

    with pytest.raises(UnauthenticatedError) as caught:
        directory.load(str(uuid.uuid4()))

    assert caught.value.reason == "USER_INACTIVE"


def test_unauthenticated_raised_by_auth_arrives_as_unauthenticated_error(
    auth: AuthService,
) -> None:
    with pytest.raises(UnauthenticatedError) as caught:
        credentials_for(auth, secret="not-the-secret").token()

    assert caught.value.reason == "SERVICE_SECRET_INVALID"
