"""ListAuditEvents against real servers: scope by organization, filters, signed paging."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Unpack

from google.protobuf.timestamp_pb2 import Timestamp
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.common.v1 import error_pb2

from tests.audit.support import Filters, Stack, make_event, timestamp
from tests.support import Account


def ids(events: Iterable[audit_pb.AuditEvent]) -> list[str]:
    return [e.event_id for e in events]


def error_of(
    stack: Stack,
    user: Account,
    page_size: int = 0,
    page_token: str = "",
    **filters: Unpack[Filters],
) -> tuple[int, str]:
    response = stack.list_events(user, page_size, page_token, **filters)
    assert response.HasField("error"), "expected an error envelope"
    return response.error.code, response.error.reason


def test_users_see_their_organizations_events_and_admins_see_all(stack: Stack) -> None:
    borrower = stack.user(auth_pb.USER_ROLE_BORROWER)
    lender = stack.user(auth_pb.USER_ROLE_LENDER)
    outsider = stack.user()
    admin = stack.admin()
    own = make_event(borrower.organization_id)
    shared = make_event(borrower.organization_id, lender.organization_id)
    lenders = make_event(lender.organization_id)
    anonymous = make_event(action="LOGIN_FAILED", resource_type="user", actor_user_id="")
    stack.ingest([own, shared, lenders, anonymous])

    assert ids(stack.all_events(borrower)) == ids([own, shared])
    assert ids(stack.all_events(lender)) == ids([shared, lenders])
    assert stack.all_events(outsider) == []
    assert ids(stack.all_events(admin)) == ids([own, shared, lenders, anonymous])
    assert ids(stack.all_events(admin, organization_id=lender.organization_id)) == ids(
        [shared, lenders]
    )
    assert ids(stack.all_events(borrower, organization_id=borrower.organization_id)) == ids(
        [own, shared]
    )
    assert error_of(stack, borrower, organization_id=lender.organization_id) == (
        error_pb2.ERROR_CODE_PERMISSION_DENIED,
        "ORGANIZATION_OUT_OF_SCOPE",
    )


def test_listing_needs_a_user(stack: Stack) -> None:
    request = audit_pb.ListAuditEventsRequest()

    as_service = stack.audit.ListAuditEvents(request, metadata=stack.service_metadata())
    anonymous = stack.audit.ListAuditEvents(request)

    assert (as_service.error.code, as_service.error.reason) == (
        error_pb2.ERROR_CODE_PERMISSION_DENIED,
        "USER_IDENTITY_REQUIRED",
    )
    assert (anonymous.error.code, anonymous.error.reason) == (
        error_pb2.ERROR_CODE_UNAUTHENTICATED,
        "TOKEN_MISSING",
    )


def test_each_filter_narrows_the_listing(stack: Stack) -> None:
    admin = stack.admin()
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    created = make_event("org-a", resource_id="loan-1", actor_user_id="alice", occur_time=start)
    kpi = make_event(
        "org-a",
        resource_type="kpi",
        resource_id="kpi-1",
        actor_user_id="bob",
        action="KPI_CREATED",
        occur_time=start + timedelta(hours=1),
    )
    submitted = make_event(
        "org-b",
        resource_id="loan-1",
        actor_user_id="bob",
        action="LOAN_SUBMITTED",
        occur_time=start + timedelta(hours=2),
    )
    stack.ingest([created, kpi, submitted])
    hour = timedelta(hours=1)

    cases: list[tuple[Filters, list[audit_pb.AuditEvent]]] = [
        ({}, [created, kpi, submitted]),
        ({"resource_type": "kpi"}, [kpi]),
        ({"resource_id": "loan-1"}, [created, submitted]),
        ({"resource_type": "loan", "resource_id": "kpi-1"}, []),
        ({"actor_user_id": "bob"}, [kpi, submitted]),
        ({"action": "LOAN_CREATED"}, [created]),
        ({"organization_id": "org-b"}, [submitted]),
        ({"occur_time_from": timestamp(start + hour)}, [kpi, submitted]),  # inclusive
        ({"occur_time_to": timestamp(start + hour)}, [created]),  # exclusive
        (
            {"occur_time_from": timestamp(start), "occur_time_to": timestamp(start + 2 * hour)},
            [created, kpi],
        ),
        ({"actor_user_id": "bob", "action": "LOAN_SUBMITTED"}, [submitted]),
    ]
    for filters, expected in cases:
        assert ids(stack.all_events(admin, **filters)) == ids(expected), filters


def _pages(stack: Stack, user: Account, size: int, **filters: Unpack[Filters]) -> list[list[str]]:
    pages: list[list[str]] = []
    token = ""
    while True:
        response = stack.list_events(user, page_size=size, page_token=token, **filters)
        assert response.HasField("page"), response.error
        pages.append(ids(response.page.events))
        token = response.page.next_page_token
        if not token:
            return pages


def test_pages_cover_every_event_once_in_log_order(stack: Stack) -> None:
    borrower = stack.user()
    admin = stack.admin()
    mine = [make_event(borrower.organization_id) for _ in range(12)]
    others = [make_event("org-x") for _ in range(11)]
    interleaved = [e for pair in zip(mine, others, strict=False) for e in pair] + mine[11:]
    stack.ingest(interleaved[:10], interleaved[10:])

    assert _pages(stack, borrower, 5) == [ids(mine[:5]), ids(mine[5:10]), ids(mine[10:])]
    assert _pages(stack, borrower, 6) == [ids(mine[:6]), ids(mine[6:])]
    admin_pages = _pages(stack, admin, 4)
    assert [len(p) for p in admin_pages] == [4, 4, 4, 4, 4, 3]
    assert [i for page in admin_pages for i in page] == ids(interleaved)
    assert _pages(stack, admin, 0) == [ids(interleaved)]  # 0 means the default, 50
    assert error_of(stack, admin, page_size=-1) == (
        error_pb2.ERROR_CODE_INVALID_ARGUMENT,
        "PAGE_SIZE_NEGATIVE",
    )


def test_a_page_token_serves_only_its_filter_and_cannot_be_forged(stack: Stack) -> None:
    admin = stack.admin()
    since = datetime(2026, 1, 1, tzinfo=UTC)
    stack.ingest([make_event("org-a", resource_id="loan-1") for _ in range(3)])
    first = stack.list_events(admin, page_size=1, resource_id="loan-1")
    token = first.page.next_page_token
    assert token
    timed = stack.list_events(admin, page_size=2, occur_time_from=timestamp(since))
    timed_token = timed.page.next_page_token
    assert timed_token

    payload = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    edited = payload[:16] + payload[16:].replace(b'"after":', b'"after":1')
    forged = base64.urlsafe_b64encode(edited).decode().rstrip("=")
    invalid = (error_pb2.ERROR_CODE_INVALID_ARGUMENT, "PAGE_TOKEN_INVALID")

    assert stack.list_events(admin, page_size=1, page_token=token, resource_id="loan-1").page
    assert error_of(stack, admin, page_token=token, resource_id="loan-2") == invalid
    assert stack.list_events(
        admin, page_token=timed_token, occur_time_from=timestamp(since)
    ).page.events
    later = timestamp(since + timedelta(seconds=1))
    assert error_of(stack, admin, page_token=timed_token, occur_time_from=later) == invalid
    assert error_of(stack, admin, page_token=token) == invalid
    assert error_of(stack, admin, page_token=forged, resource_id="loan-1") == invalid
    assert error_of(stack, admin, page_token="garbage!", resource_id="loan-1") == invalid


def test_an_impossible_time_bound_is_invalid(stack: Stack) -> None:
    admin = stack.admin()
    beyond_9999 = Timestamp(seconds=10**12)

    response = stack.list_events(admin, occur_time_from=beyond_9999, occur_time_to=beyond_9999)

    assert (response.error.code, response.error.reason) == (
        error_pb2.ERROR_CODE_INVALID_ARGUMENT,
        "OCCUR_TIME_INVALID",
    )
    assert [v.field for v in response.error.field_violations] == [
        "filter.occur_time_from",
        "filter.occur_time_to",
    ]
