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

Use cases raise these; the edge (envelope.py) turns them into an Error message
by looking up ``code``. Anything else is an unexpected failure: INTERNAL.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
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
    "UnauthenticatedError",
    "UnavailableError",
    "ValidationError",
]


class Code(enum.IntEnum):
    """Mirrors loansuite.common.v1.ErrorCode, without importing generated code."""

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
    """An outcome the application decided; travels in the envelope with status OK."""

    code: Code = Code.INTERNAL
    reason: str = "INTERNAL"
    message: str = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: str | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        self.message = message or type(self).message
        self.reason = reason or type(self).reason
        self.field_violations = field_violations
        super().__init__(self.message)


class InvalidArgumentError(AppError):
    code = Code.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"
    message = "the request is invalid"


class ValidationError(InvalidArgumentError):
    """Request fields failed validation; the first violation gives the reason."""

    def __init__(self, violations: list[tuple[str, str, str]]) -> None:
        # violations: (field, reason, description)
        first_field, first_reason, _ = violations[0]
        super().__init__(
            f"invalid {first_field}" if len(violations) == 1 else "invalid request fields",
            reason=first_reason,
            field_violations=tuple(FieldViolation(f, d) for f, _, d in violations),
        )
        self.reasons = {field: reason for field, reason, _ in violations}


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
