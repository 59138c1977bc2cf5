"""Expected outcomes as exceptions, each carrying its envelope code.

    AppError
    ├── InvalidArgumentError        (ValidationError carries field violations)
    ├── UnauthenticatedError
    ├── PermissionDeniedError
    ├── NotFoundError
    ├── AlreadyExistsError
    ├── FailedPreconditionError
    ├── AbortedError
    ├── ResourceExhaustedError
    └── UnavailableError
        └── ServerStoppingError     (a gRPC status, not an envelope: the server stops)

Use cases raise these; the edge (envelope.py) turns them into an Error message
by looking up ``code``. Anything else is an unexpected failure: INTERNAL.
``ERROR_CLASSES`` is the way back, for an Error that another service answered:
``error_for`` rebuilds it as the class a caller catches.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType

from services.shared._types import Violation

__all__ = [
    "ERROR_CLASSES",
    "AbortedError",
    "AlreadyExistsError",
    "AppError",
    "Code",
    "FailedPreconditionError",
    "FieldViolation",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "ServerStoppingError",
    "UnauthenticatedError",
    "UnavailableError",
    "ValidationError",
    "Violation",
    "error_for",
]


class Code(enum.IntEnum):
    """Mirrors loansuite.common.v1.ErrorCode (names without ERROR_CODE_), without generated code.

    Use cases import this module, so it stays free of generated code; tests tie the
    two enums together name by name and value by value.
    """

    INVALID_ARGUMENT = 1
    UNAUTHENTICATED = 2
    PERMISSION_DENIED = 3
    NOT_FOUND = 4
    ALREADY_EXISTS = 5
    FAILED_PRECONDITION = 6
    ABORTED = 7
    RESOURCE_EXHAUSTED = 8
    UNAVAILABLE = 9
    INTERNAL = 10


@dataclass(frozen=True)
class FieldViolation:
    """One invalid request field, named by its proto field path."""

    field: str
    description: str


class AppError(Exception):
    """An outcome the application decided; travels in the envelope with status OK.

    A class with ``as_status`` set describes the call's transport or capacity
    instead (a commit that could not be made durable): proxies and retry
    policies must see it, so it answers with that gRPC status, the Error in its
    details.
    """

    code: Code = Code.INTERNAL
    reason: str = "INTERNAL"
    message: str = "internal error"
    as_status: bool = False

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: str | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
        retry_delay: timedelta | None = None,
    ) -> None:
        self.message = message or type(self).message
        self.reason = reason or type(self).reason
        self.field_violations = field_violations
        # When the caller may try again (a throttle's lockout); sent as google.rpc.RetryInfo.
        self.retry_delay = retry_delay
        super().__init__(self.message)


class InvalidArgumentError(AppError):
    code = Code.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"
    message = "the request is invalid"


class ValidationError(InvalidArgumentError):
    """Request fields failed validation; the first violation gives the reason."""

    def __init__(self, violations: Sequence[tuple[str, str, str]]) -> None:
        # Plain (field, reason, description) tuples are accepted: a Violation is one.
        self.violations = tuple(Violation(*violation) for violation in violations)
        first = self.violations[0]
        super().__init__(
            f"invalid {first.field}" if len(self.violations) == 1 else "invalid request fields",
            reason=first.reason,
            field_violations=tuple(FieldViolation(v.field, v.description) for v in self.violations),
        )
        self.reasons = {v.field: v.reason for v in self.violations}


class UnauthenticatedError(AppError):
    code = Code.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"
    message = "authentication required"


class PermissionDeniedError(AppError):
    code = Code.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"
    message = "permission denied"


class NotFoundError(AppError):
    code = Code.NOT_FOUND
    reason = "NOT_FOUND"
    message = "not found"


class AlreadyExistsError(AppError):
    code = Code.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"
    message = "already exists"


class FailedPreconditionError(AppError):
    code = Code.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"
    message = "the resource is not in a state that allows this"


class AbortedError(AppError):
    code = Code.ABORTED
    reason = "ABORTED"
    message = "the resource changed concurrently; retry"


class ResourceExhaustedError(AppError):
    code = Code.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"
    message = "too many requests"


class UnavailableError(AppError):
    code = Code.UNAVAILABLE
    reason = "UNAVAILABLE"
    message = "a dependency is unavailable; retry later"


class ServerStoppingError(UnavailableError):
    """This server is stopping: the call or stream ends so that the client reconnects."""

    as_status = True  # balancers and retry policies must see it: a real UNAVAILABLE
    reason = "SERVER_STOPPING"
    message = "the server is stopping; retry"


# The one table from code to class; each class's own ``code`` must agree (tested).
ERROR_CLASSES: Mapping[Code, type[AppError]] = MappingProxyType(
    {
        Code.INVALID_ARGUMENT: InvalidArgumentError,
        Code.UNAUTHENTICATED: UnauthenticatedError,
        Code.PERMISSION_DENIED: PermissionDeniedError,
        Code.NOT_FOUND: NotFoundError,
        Code.ALREADY_EXISTS: AlreadyExistsError,
        Code.FAILED_PRECONDITION: FailedPreconditionError,
        Code.ABORTED: AbortedError,
        Code.RESOURCE_EXHAUSTED: ResourceExhaustedError,
        Code.UNAVAILABLE: UnavailableError,
        Code.INTERNAL: AppError,
    }
)


def error_for(
    code: Code,
    message: str,
    *,
    reason: str,
    field_violations: Sequence[FieldViolation] = (),
) -> AppError:
    """The outcome for a code as the class callers catch, e.g. NotFoundError for NOT_FOUND."""
    return ERROR_CLASSES[code](message, reason=reason, field_violations=tuple(field_violations))
