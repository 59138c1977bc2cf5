"""The bus's admission on its own: a share of the streams per user and per organization."""

from __future__ import annotations

import pytest

from services.loans.watching.bus import ChangeBus
from services.shared.stream_quota import StreamLimitError


def refusal(bus: ChangeBus, organization_id: str, user_id: str) -> str:
    with pytest.raises(StreamLimitError) as refused:
        bus.subscribe(organization_id, user_id)
    assert refused.value.as_status  # answered with gRPC status RESOURCE_EXHAUSTED
    return refused.value.reason


def test_users_and_organizations_each_get_a_share_within_the_process_limit() -> None:
    bus = ChangeBus(max_subscribers=5, per_user=2, per_organization=3)
    mine = [bus.subscribe("org-a", "ada") for _ in range(2)]

    by_user = refusal(bus, "org-a", "ada")
    colleague = bus.subscribe("org-a", "alan")
    by_organization = refusal(bus, "org-a", "alan")
    others = [bus.subscribe("org-b", "bea"), bus.subscribe("org-c", "cy")]
    by_process = refusal(bus, "org-d", "dee")
    bus.unsubscribe(mine[0])
    bus.subscribe("org-a", "ada")  # the freed place is the user's again

    assert (by_user, by_organization, by_process) == (
        "STREAMS_PER_USER_EXHAUSTED",
        "STREAMS_PER_ORGANIZATION_EXHAUSTED",
        "TOO_MANY_WATCHERS",
    )
    assert bus.subscriber_count() == 5
    assert colleague.organization_id == "org-a"
    assert len(others) == 2


def test_a_refused_subscription_takes_no_place() -> None:
    bus = ChangeBus(max_subscribers=2, per_user=1)
    first = bus.subscribe("org-a", "ada")

    for _ in range(3):
        refusal(bus, "org-a", "ada")
    bus.unsubscribe(first)

    assert bus.subscriber_count() == 0
    bus.subscribe("org-a", "ada")
    bus.subscribe("org-b", "bea")
