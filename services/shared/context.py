"""The call being served: its request id (logs, envelopes, downstream calls) and deadline."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Sequence
from typing import Protocol

from services.shared.validation import REQUEST_ID

__all__ = [
    "REQUEST_ID_HEADER",
    "Deadline",
    "current_request_id",
    "outgoing_metadata",
    "request_id_from",
    "time_remaining",
]

REQUEST_ID_HEADER = "x-request-id"


class Deadline(Protocol):
    """What tells the time left to the call being served (a grpc.ServicerContext does)."""

    def time_remaining(self) -> float | None: ...


# One variable for both, so binding a call costs one set and one reset.
_call: contextvars.ContextVar[tuple[str, Deadline | None]] = contextvars.ContextVar(
    "call", default=("", None)
)


def request_id_from(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The caller's x-request-id when it is acceptable, else a new one."""
    for key, value in metadata or ():
        # Accept what a sane client or proxy sends; anything else is replaced, never echoed.
        if key == REQUEST_ID_HEADER and isinstance(value, str) and REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def current_request_id() -> str:
    return _call.get()[0]


def time_remaining() -> float | None:
    """Seconds left to the call being served; None without a deadline or outside a call."""
    deadline = _call.get()[1]
    return None if deadline is None else deadline.time_remaining()


def set_request_id(
    request_id: str, deadline: Deadline | None = None
) -> contextvars.Token[tuple[str, Deadline | None]]:
    return _call.set((request_id, deadline))


def reset_request_id(token: contextvars.Token[tuple[str, Deadline | None]]) -> None:
    _call.reset(token)


def outgoing_metadata(*, bearer: str | None = None) -> tuple[tuple[str, str], ...]:
    """Metadata for a downstream call: the current request id, and a token if given."""
    pairs: list[tuple[str, str]] = []
    if request_id := current_request_id():
        pairs.append((REQUEST_ID_HEADER, request_id))
    if bearer:
        pairs.append(("authorization", f"Bearer {bearer}"))
    return tuple(pairs)
