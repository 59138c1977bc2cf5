"""Opaque, tamper-evident page tokens: a signed position, never a raw offset."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from services.shared.errors import InvalidArgumentError, ValidationError

__all__ = ["PageTokens", "page_size"]


def page_size(requested: int, *, default: int, maximum: int) -> int:
    """The page size to use: default when unset, never above maximum, never negative."""
    if requested < 0:
        raise ValidationError([("page_size", "PAGE_SIZE_NEGATIVE", "must not be negative")])
    return min(requested or default, maximum)


class PageTokens:
    """Encodes a cursor with an HMAC so clients can hold it but not forge or edit it."""

    def __init__(self, secret: str, *, purpose: str) -> None:
        self._key = hashlib.sha256(f"{purpose}:{secret}".encode()).digest()

    def encode(self, cursor: dict[str, Any]) -> str:
        body = json.dumps(cursor, separators=(",", ":"), sort_keys=True).encode()
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")

    def decode(self, token: str) -> dict[str, Any]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            mac, body = raw[:16], raw[16:]
            if not hmac.compare_digest(
                mac, hmac.new(self._key, body, hashlib.sha256).digest()[:16]
            ):
                raise ValueError("bad mac")
            cursor: dict[str, Any] = json.loads(body)
            return cursor
        except ValueError:
            raise self.invalid() from None

    @staticmethod
    def invalid() -> InvalidArgumentError:
        """The error for a token that was forged, edited or issued for another query."""
        return InvalidArgumentError(
            "page_token is not one this service issued for this query",
            reason="PAGE_TOKEN_INVALID",
        )
