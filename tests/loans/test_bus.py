"""The change bus on its own: bounded queues, admission, and how streams end."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from services.loans.vocabulary import ChangeKind
from services.loans.watching.bus import ChangeBus, Subscription, SubscriptionClosedError
from services.loans.watching.changes import LoanChanged, decode_change, encode_change
from services.shared.errors import ResourceExhaustedError, UnavailableError


def change(loan_id: str, *orgs: str) -> LoanChanged:
    return LoanChanged(loan_id, ChangeKind.UPDATED, f"etag-{loan_id}", orgs, datetime.now(UTC))


def test_a_full_queue_ends_that_subscription_and_no_other() -> None:
    bus = ChangeBus(max_subscribers=4, queue_size=3)
    slow, fast = bus.subscribe("org-a"), bus.subscribe("org-a")

    for number in range(5):
        bus.publish([change(str(number), "org-a")])
        assert fast.next(timeout=1) is not None

    with pytest.raises(ResourceExhaustedError) as ended:
        slow.next(timeout=1)  # what was queued is dropped with the stream
    assert ended.value.reason == "SUBSCRIBER_TOO_SLOW"


def test_publishing_never_waits_for_a_subscriber_that_does_not_read() -> None:
    bus = ChangeBus(max_subscribers=1, queue_size=10)
    bus.subscribe("org-a")

    def publish_many() -> None:
        for n in range(10_000):
            bus.publish([change(str(n), "org-a")])

    publisher = threading.Thread(target=publish_many)

    publisher.start()
    publisher.join(30)

    assert not publisher.is_alive()


def drain(subscription: Subscription) -> list[str]:
    seen = []
    while (item := subscription.next(timeout=0)) is not None:
        seen.append(item.loan_id)
    return seen


def test_changes_reach_the_organizations_involved_once_each_in_order() -> None:
    bus = ChangeBus(max_subscribers=4)
    borrower, lender, other = bus.subscribe("b"), bus.subscribe("l"), bus.subscribe("x")

    bus.publish([change("1", "b", "l", "b"), change("2", "b")])

    assert drain(borrower) == ["1", "2"]
    assert drain(lender) == ["1"]
    assert drain(other) == []


def test_admission_is_bounded_and_a_slot_frees_when_a_subscriber_leaves() -> None:
    bus = ChangeBus(max_subscribers=2)
    first, _ = bus.subscribe("a"), bus.subscribe("b")

    with pytest.raises(ResourceExhaustedError) as refused:
        bus.subscribe("c")
    bus.unsubscribe(first)
    bus.unsubscribe(first)  # twice frees one slot only
    bus.subscribe("c")

    assert refused.value.reason == "TOO_MANY_WATCHERS"
    assert bus.subscriber_count() == 2
    with pytest.raises(SubscriptionClosedError):
        first.next(timeout=0)


def test_a_lost_feed_ends_every_stream_and_refuses_new_ones_until_restored() -> None:
    bus = ChangeBus(max_subscribers=2)
    subscription = bus.subscribe("a")
    bus.publish([change("1", "a")])

    bus.feed_lost()
    with pytest.raises(UnavailableError) as refused:
        bus.subscribe("a")
    bus.feed_restored()
    bus.subscribe("a")

    with pytest.raises(UnavailableError) as ended:
        subscription.next(timeout=0)  # the queued change goes too: the client re-reads
    assert ended.value.reason == refused.value.reason == "CHANGE_FEED_INTERRUPTED"


def test_closing_wakes_a_waiting_stream_and_refuses_new_ones() -> None:
    bus = ChangeBus(max_subscribers=2)
    subscription = bus.subscribe("a")
    outcome: list[UnavailableError] = []

    def wait() -> None:
        try:
            subscription.next(timeout=60)
        except UnavailableError as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    bus.close()
    waiter.join(10)

    assert [e.reason for e in outcome] == ["SERVER_STOPPING"]
    with pytest.raises(UnavailableError):
        bus.subscribe("a")


def test_a_notification_payload_round_trips_well_under_the_notify_limit() -> None:
    original = change("7d1c2b0e-8a31-4c55-9a8f-1f7b5a9b9e10", "o" * 36, "p" * 36)

    payload = encode_change(original)

    assert decode_change(payload) == original
    assert len(payload.encode()) < 8000
