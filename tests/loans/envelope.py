"""What a loan service call carries and answers: request ids, tagged metadata, the envelope."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from loansuite.common.v1 import error_pb2

from services.shared._types import Metadata
from tests.support import Account

# The envelope error codes the tests expect most, by short names.
INVALID = error_pb2.ERROR_CODE_INVALID_ARGUMENT
DENIED = error_pb2.ERROR_CODE_PERMISSION_DENIED
NOT_FOUND = error_pb2.ERROR_CODE_NOT_FOUND
PRECONDITION = error_pb2.ERROR_CODE_FAILED_PRECONDITION
ABORTED = error_pb2.ERROR_CODE_ABORTED

Failure = tuple[int, str, list[str]]  # an envelope error's code, reason and violated fields


class Envelope(Protocol):
    """Any response of the loan service: a payload or an error."""

    def WhichOneof(self, oneof_group: Any, /) -> str | None: ...

    @property
    def error(self) -> error_pb2.Error: ...


def failure(response: Envelope) -> Failure:
    """The error's code, reason and violated fields; the response must be an error."""
    assert response.WhichOneof("result") == "error", response
    error = response.error
    return error.code, error.reason, [v.field for v in error.field_violations]


def new_id() -> str:
    """A request id no other call uses."""
    return f"t-{uuid.uuid4().hex}"


def tagged(account: Account, request_id: str) -> Metadata:
    """The account's metadata with an x-request-id, which the audit events carry."""
    return (*account.metadata, ("x-request-id", request_id))
