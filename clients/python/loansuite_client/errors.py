"""Errors the services answer, as exceptions: one class per ErrorCode.

    LoansuiteError
    ├── InvalidArgumentError      (field_violations name the fields)
    ├── UnauthenticatedError
    ├── PermissionDeniedError
    ├── NotFoundError
    ├── AlreadyExistsError
    ├── FailedPreconditionError
    ├── AbortedError
    ├── ResourceExhaustedError    (often a status, with retry_after)
    ├── UnavailableError          (often a status: retry)
    └── InternalError

An envelope error (gRPC status OK) and a status that carries the Error as a
``google.rpc.Status`` detail become the same class; ``status`` says which.
Transport failures without that detail stay ``grpc.RpcError``.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2
from loansuite.common.v1 import error_pb2

__all__ = [
    "ERROR_CLASSES",
    "STATUS_DETAILS_KEY",
    "AbortedError",
    "AlreadyExistsError",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "LoansuiteError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "from_message",
    "from_rpc_error",
]

STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    """A field that failed validation, by its proto field path (``maturity_date``)."""

    field: str
    description: str


class LoansuiteError(Exception):
    """An error a service answered: code, stable reason, fields and request id."""

    code: str = "UNSPECIFIED"

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        field_violations: tuple[FieldViolation, ...] = (),
        request_id: str = "",
        status: grpc.StatusCode | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.field_violations = field_violations
        self.request_id = request_id
        self.status = status  # the gRPC status it came with; None for an envelope error
        self.retry_after = retry_after  # seconds the server asked to wait, when it said

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message} (request {self.request_id})"


class InvalidArgumentError(LoansuiteError):
    code = "INVALID_ARGUMENT"


class UnauthenticatedError(LoansuiteError):
    code = "UNAUTHENTICATED"


class PermissionDeniedError(LoansuiteError):
    code = "PERMISSION_DENIED"


class NotFoundError(LoansuiteError):
    code = "NOT_FOUND"


class AlreadyExistsError(LoansuiteError):
    code = "ALREADY_EXISTS"


class FailedPreconditionError(LoansuiteError):
    code = "FAILED_PRECONDITION"


class AbortedError(LoansuiteError):
    code = "ABORTED"


class ResourceExhaustedError(LoansuiteError):
    code = "RESOURCE_EXHAUSTED"


class UnavailableError(LoansuiteError):
    code = "UNAVAILABLE"


class InternalError(LoansuiteError):
    code = "INTERNAL"


ERROR_CLASSES: dict[int, type[LoansuiteError]] = {
    error_pb2.ErrorCode.Value(f"ERROR_CODE_{cls.code}"): cls
    for cls in (
        InvalidArgumentError,
        UnauthenticatedError,
        PermissionDeniedError,
        NotFoundError,
        AlreadyExistsError,
        FailedPreconditionError,
        AbortedError,
        ResourceExhaustedError,
        UnavailableError,
        InternalError,
    )
}


def from_message(
    error: error_pb2.Error,
    *,
    status: grpc.StatusCode | None = None,
    retry_after: float | None = None,
) -> LoansuiteError:
    """The exception for an Error message; an unknown code is a plain LoansuiteError."""
    cls = ERROR_CLASSES.get(error.code, LoansuiteError)
    return cls(
        error.message,
        reason=error.reason,
        field_violations=tuple(
            FieldViolation(v.field, v.description) for v in error.field_violations
        ),
        request_id=error.request_id,
        status=status,
        retry_after=retry_after,
    )


def from_rpc_error(exc: grpc.RpcError) -> LoansuiteError | None:
    """The Error a failed call's status carries as a detail, or None (a transport failure).

    Works for the synchronous and the asyncio API alike: both errors offer their
    trailing metadata, where the status travels as ``grpc-status-details-bin``.
    """
    trailing = getattr(exc, "trailing_metadata", None)
    code = getattr(exc, "code", None)
    if trailing is None or code is None:
        return None
    raw = next((v for k, v in trailing() or () if k == STATUS_DETAILS_KEY), None)
    if not isinstance(raw, bytes):
        return None
    status = status_pb2.Status.FromString(raw)
    error, retry_after = None, None
    for detail in status.details:
        if detail.Is(error_pb2.Error.DESCRIPTOR):
            error = error_pb2.Error()
            detail.Unpack(error)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            retry_after = info.retry_delay.ToTimedelta().total_seconds()
    if error is None:
        return None
    return from_message(error, status=code(), retry_after=retry_after)
