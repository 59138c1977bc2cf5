"""The in-process change bus: committed loan changes fanned out to WatchLoans subscribers.

Writers never wait for subscribers. Each subscriber has a bounded queue; a
subscriber whose queue is full is not slowed down to or waited for: its stream
ends with RESOURCE_EXHAUSTED / SUBSCRIBER_TOO_SLOW, and the client subscribes
again and re-reads what it shows. Dropping the stream (rather than silently
dropping a change) keeps the promise that a live stream misses nothing.

Every open stream holds a server worker thread, so the bus admits at most
``max_subscribers`` at a time (TOO_MANY_WATCHERS beyond that), leaving the rest
of the pool to unary calls, and of those at most ``per_user`` for one user and
``per_organization`` for one organization, so that no tenant can take them all
(services/shared/stream_quota.py). Past any of them the call ends with gRPC
status RESOURCE_EXHAUSTED.

The bus is fed by whatever sees commits (changes.py): the SQLite commit hook,
or the PostgreSQL listener (pg_listener.py). When that feed is interrupted, the
bus ends every stream with UNAVAILABLE / CHANGE_FEED_INTERRUPTED and refuses
new ones until the feed is back, since changes committed meanwhile are lost.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable

from services.loans.watching.changes import LoanChanged
from services.shared.errors import (
    AppError,
    ResourceExhaustedError,
    ServerStoppingError,
    UnavailableError,
)
from services.shared.stream_quota import StreamQuota, Ticket

__all__ = ["DEFAULT_QUEUE_SIZE", "ChangeBus", "Subscription", "SubscriptionClosedError"]

DEFAULT_QUEUE_SIZE = 1000


class SubscriptionClosedError(Exception):
    """The subscription ended without an error to report (the client went away)."""


class Subscription:
    """One subscriber's bounded queue of changes to loans of its organization."""

    def __init__(self, organization_id: str, capacity: int, ticket: Ticket) -> None:
        self.organization_id = organization_id
        self.ticket = ticket  # its place among the bus's streams
        self._capacity = capacity
        self._items: deque[LoanChanged] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._ended = False
        self._error: AppError | None = None

    def offer(self, change: LoanChanged) -> None:
        """Queue a change without ever blocking; a full queue ends the subscription."""
        with self._ready:
            if self._ended:
                return
            if len(self._items) >= self._capacity:
                self._end(
                    ResourceExhaustedError(
                        "this subscriber fell too far behind; subscribe again and re-read",
                        reason="SUBSCRIBER_TOO_SLOW",
                    )
                )
                return
            self._items.append(change)
            self._ready.notify()

    def end(self, error: AppError | None = None) -> None:
        """End the subscription: with an error to send, or quietly (None)."""
        with self._ready:
            if not self._ended:
                self._end(error)

    def next(self, timeout: float) -> LoanChanged | None:
        """The next change; None after timeout with nothing queued.

        Raises the error that ended the subscription, or SubscriptionClosedError.
        """
        with self._ready:
            if not self._items and not self._ended:
                self._ready.wait(timeout)
            if self._items:
                return self._items.popleft()
            if not self._ended:
                return None
            if self._error is not None:
                raise self._error
            raise SubscriptionClosedError

    def _end(self, error: AppError | None) -> None:
        self._ended, self._error = True, error
        self._items.clear()  # an ended stream delivers nothing more; free the memory now
        self._ready.notify_all()


class ChangeBus:
    """Fans committed changes out to the subscribers of the organizations involved."""

    def __init__(
        self,
        *,
        max_subscribers: int,
        per_user: int | None = None,
        per_organization: int | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        live: bool = True,
    ) -> None:
        self._quota = StreamQuota(
            total=max_subscribers,
            per_user=per_user or max_subscribers,
            per_organization=per_organization or max_subscribers,
            process_reason="TOO_MANY_WATCHERS",
        )
        self._queue_size = queue_size
        self._lock = threading.Lock()
        self._by_org: dict[str, set[Subscription]] = {}
        self._live = live
        self._closed = False

    def subscribe(self, organization_id: str, user_id: str = "") -> Subscription:
        """A new subscription for the organization's loans, if there is room for it.

        Raises StreamLimitError past the process limit or the caller's share of it.
        """
        with self._lock:
            if self._closed:
                raise ServerStoppingError()
            if not self._live:
                raise UnavailableError(
                    "change notifications are reconnecting; retry shortly",
                    reason="CHANGE_FEED_INTERRUPTED",
                )
            ticket = self._quota.acquire(user_id, organization_id)
            subscription = Subscription(organization_id, self._queue_size, ticket)
            self._by_org.setdefault(organization_id, set()).add(subscription)
            return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a subscription (idempotent); its slot is free again."""
        subscription.end()
        with self._lock:
            members = self._by_org.get(subscription.organization_id)
            if members is None or subscription not in members:
                return
            members.discard(subscription)
            if not members:
                del self._by_org[subscription.organization_id]
            self._quota.release(subscription.ticket)

    def publish(self, changes: Iterable[LoanChanged]) -> None:
        """Offer each change to the subscribers of its organizations; never blocks on them."""
        with self._lock:
            for change in changes:
                for org in set(change.organization_ids):
                    for subscription in self._by_org.get(org, ()):
                        subscription.offer(change)

    def subscriber_count(self) -> int:
        return self._quota.open_streams()

    def feed_lost(self) -> None:
        """The source of changes broke: end every stream, refuse new ones until restored."""
        self._end_all(
            lambda: UnavailableError(
                "change notifications were interrupted; subscribe again and re-read",
                reason="CHANGE_FEED_INTERRUPTED",
            ),
            live=False,
        )

    def feed_restored(self) -> None:
        with self._lock:
            self._live = True

    def close(self) -> None:
        """The server is stopping: end every stream now rather than hold the grace period."""
        with self._lock:
            self._closed = True
        self._end_all(ServerStoppingError)

    def _end_all(self, error: Callable[[], AppError], *, live: bool | None = None) -> None:
        with self._lock:
            if live is not None:
                self._live = live
            subscriptions = [s for members in self._by_org.values() for s in members]
        for subscription in subscriptions:
            subscription.end(error())  # one exception per stream: each is raised in its thread
