"""The request id of the call being served, for logs, envelopes and downstream calls."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Sequence

from services.shared.validation import REQUEST_ID

__all__ = ["REQUEST_ID_HEADER", "current_request_id", "outgoing_metadata", "request_id_from"]

REQUEST_ID_HEADER = "x-request-id"

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def request_id_from(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The caller's x-request-id when it is acceptable, else a new one."""
    for key, value in metadata or ():
        # Accept what a sane client or proxy sends; anything else is replaced, never echoed.
        if key == REQUEST_ID_HEADER and isinstance(value, str) and REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def current_request_id() -> str:
    return _request_id.get()


def set_request_id(request_id: str) -> contextvars.Token[str]:
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token[str]) -> None:
    _request_id.reset(token)


def outgoing_metadata(*, bearer: str | None = None) -> tuple[tuple[str, str], ...]:
    """Metadata for a downstream call: the current request id, and a token if given."""
    pairs: list[tuple[str, str]] = []
    if request_id := current_request_id():
        pairs.append((REQUEST_ID_HEADER, request_id))
    if bearer:
        pairs.append(("authorization", f"Bearer {bearer}"))
    return tuple(pairs)
