"""Admission of long-lived streams: a process limit, and a share of it per user and organization.

Every open stream holds a server worker thread, so a process serves a bounded
number of them. Without a share per caller, one user's idle streams could take
them all and lock every other organization out; with one, a user gets at most
``per_user`` and an organization at most ``per_organization``, within the
process limit.

A refusal is about capacity, not about the request, so it is a real gRPC
status, RESOURCE_EXHAUSTED, with the envelope Error as its detail (DESIGN §2):
proxies and retry policies see it.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from services.shared.errors import ResourceExhaustedError

__all__ = ["StreamLimitError", "StreamQuota", "Ticket"]


class StreamLimitError(ResourceExhaustedError):
    """No room for another stream: answered with gRPC status RESOURCE_EXHAUSTED."""

    as_status = True


@dataclass(frozen=True, eq=False)
class Ticket:
    """One admitted stream, to hand back when it ends."""

    user_id: str
    organization_id: str


class StreamQuota:
    """Counts open streams in total, per user and per organization; thread-safe."""

    def __init__(
        self, *, total: int, per_user: int, per_organization: int, process_reason: str
    ) -> None:
        if min(total, per_user, per_organization) < 1:
            raise ValueError("every stream limit must be at least 1")
        self.total = total
        self.per_user = min(per_user, total)
        self.per_organization = min(per_organization, total)
        self._process_reason = process_reason  # the reason clients already know for a full process
        self._lock = threading.Lock()
        self._open = 0
        self._by_user: Counter[str] = Counter()
        self._by_organization: Counter[str] = Counter()

    def acquire(self, user_id: str, organization_id: str) -> Ticket:
        """Admit one stream of the caller, or raise StreamLimitError naming the limit reached."""
        with self._lock:
            self._check(user_id, organization_id)
            self._open += 1
            self._by_user[user_id] += 1
            self._by_organization[organization_id] += 1
        return Ticket(user_id, organization_id)

    def release(self, ticket: Ticket) -> None:
        """The stream ended: its place is free again."""
        with self._lock:
            self._open -= 1
            for counts, key in (
                (self._by_user, ticket.user_id),
                (self._by_organization, ticket.organization_id),
            ):
                counts[key] -= 1
                if counts[key] <= 0:
                    del counts[key]  # the counters hold only callers with open streams

    @contextlib.contextmanager
    def slot(self, user_id: str, organization_id: str) -> Iterator[Ticket]:
        """Hold a place for the block."""
        ticket = self.acquire(user_id, organization_id)
        try:
            yield ticket
        finally:
            self.release(ticket)

    def open_streams(self) -> int:
        with self._lock:
            return self._open

    def _check(self, user_id: str, organization_id: str) -> None:
        # A full process first: its reason is the one clients knew before the shares.
        if self._open >= self.total:
            raise StreamLimitError(
                f"this server already serves {self.total} streams; retry later or elsewhere",
                reason=self._process_reason,
            )
        if self._by_user[user_id] >= self.per_user:
            raise StreamLimitError(
                f"you already have {self.per_user} streams open here; close one first",
                reason="STREAMS_PER_USER_EXHAUSTED",
            )
        if self._by_organization[organization_id] >= self.per_organization:
            raise StreamLimitError(
                f"your organization already has {self.per_organization} streams open here;"
                " close one first",
                reason="STREAMS_PER_ORGANIZATION_EXHAUSTED",
            )
