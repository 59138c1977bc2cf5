"""TailAuditEvents against real servers: new events in log order, for admins, a bounded few."""

from __future__ import annotations

import queue
import threading
import time

import grpc
import pytest
from grpc_status import rpc_status
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.common.v1 import error_pb2

from services.audit.tail import MAX_TAILS, TailQuery, Tails
from services.audit.wiring import start as start_audit
from services.shared._types import Metadata
from services.shared.db import Database
from services.shared.errors import UnavailableError
from services.shared.migrations import upgrade
from services.shared.stream_quota import StreamLimitError
from tests.audit.support import Stack, make_event
from tests.support import Account

Item = audit_pb.TailAuditEventsResponse | grpc.RpcError | None


class Tail:
    """One TailAuditEvents call, read on a thread of its own."""

    def __init__(
        self,
        stack: Stack,
        metadata: Metadata,
        *,
        action: str = "",
        organization_id: str = "",
        after_sequence: int | None = None,
    ) -> None:
        request = audit_pb.TailAuditEventsRequest(
            action=action, organization_id=organization_id, after_sequence=after_sequence
        )
        self.call = stack.audit.TailAuditEvents(request, metadata=metadata, timeout=30)
        self._items: queue.Queue[Item] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self._items.put(response)
        except grpc.RpcError as exc:  # cancelled by the test, or the server went away
            self._items.put(exc)
        self._items.put(None)  # the end of the stream

    def live(self) -> Tail:
        """Wait for the response headers, which the server sends once the tail is live."""
        self.call.initial_metadata()
        return self

    def take(self, count: int, timeout: float = 5.0) -> list[Item]:
        deadline = time.monotonic() + timeout
        return [
            self._items.get(timeout=max(0.0, deadline - time.monotonic())) for _ in range(count)
        ]

    def events(self, count: int) -> list[audit_pb.AuditEvent]:
        items = self.take(count)
        assert all(isinstance(i, audit_pb.TailAuditEventsResponse) for i in items), items
        return [i.event for i in items if isinstance(i, audit_pb.TailAuditEventsResponse)]

    def quiet(self, seconds: float) -> bool:
        """Nothing more arrives within seconds."""
        try:
            self._items.get(timeout=seconds)
        except queue.Empty:
            return True
        return False


@pytest.mark.parametrize("server_model", ["thread", "aio"])
def test_an_admin_sees_new_matching_events_in_log_order_and_nothing_else(stack: Stack) -> None:
    admin = stack.admin()
    stack.ingest([make_event("org-t", action="LOAN_APPROVED")])  # before the call: not sent
    tail = Tail(stack, admin.metadata, action="LOAN_APPROVED", organization_id="org-t").live()
    first = make_event("org-t", action="LOAN_APPROVED")
    second = make_event("org-a", "org-t", action="LOAN_APPROVED")
    last = make_event("org-t", action="LOAN_APPROVED")

    def other_action() -> audit_pb.AuditEvent:
        return make_event("org-t", action="LOAN_CREATED")

    def other_organization() -> audit_pb.AuditEvent:
        return make_event("org-u", action="LOAN_APPROVED")

    stack.ingest([first, other_action(), other_organization(), second], [other_action()])
    stack.ingest([other_organization(), last])
    received = tail.events(3)
    tail.call.cancel()

    # Non-matching events were committed before `last`: had they leaked, they came first.
    assert [e.event_id for e in received] == [first.event_id, second.event_id, last.event_id]
    assert [e.sequence for e in received] == [2, 5, 8]
    assert all(e.hash and e.action == "LOAN_APPROVED" for e in received)


def test_a_tail_can_start_after_a_given_sequence(stack: Stack) -> None:
    admin = stack.admin()
    earlier = [make_event("org-a", action=f"STEP_{i}_DONE") for i in range(4)]
    stack.ingest(earlier)

    from_start = Tail(stack, admin.metadata, after_sequence=0)
    from_two = Tail(stack, admin.metadata, after_sequence=2)
    later = make_event("org-a")
    stack.ingest([later])

    assert [e.event_id for e in from_start.events(5)] == [e.event_id for e in [*earlier, later]]
    assert [e.sequence for e in from_two.events(3)] == [3, 4, 5]
    assert from_two.quiet(0.5)
    from_start.call.cancel()
    from_two.call.cancel()


@pytest.mark.parametrize("who", ["borrower", "lender", "service", "anonymous"])
def test_only_admins_may_tail(stack: Stack, who: str) -> None:
    metadata: Metadata = ()
    if who in ("borrower", "lender"):
        metadata = stack.user(auth_pb.UserRole.Value(f"USER_ROLE_{who.upper()}")).metadata
    elif who == "service":
        metadata = stack.service_metadata()

    tail = Tail(stack, (*metadata, ("x-request-id", "req-tail")))
    items = tail.take(2)

    response, end = items
    assert isinstance(response, audit_pb.TailAuditEventsResponse), items
    assert end is None, "the stream ends after the error"
    expected = (
        (error_pb2.ERROR_CODE_UNAUTHENTICATED, "TOKEN_MISSING")
        if who == "anonymous"
        else (error_pb2.ERROR_CODE_PERMISSION_DENIED, "ADMIN_REQUIRED")
    )
    assert (response.error.code, response.error.reason) == expected
    assert response.error.request_id == "req-tail"
    assert tail.call.code() == grpc.StatusCode.OK


def _refusal(items: list[Item]) -> tuple[grpc.StatusCode, str]:
    """A refused tail's gRPC status and the reason of the Error in its details."""
    refused, end = items
    assert isinstance(refused, grpc.RpcError), items
    assert end is None
    status = rpc_status.from_call(refused)  # type: ignore[arg-type]  # the error is the call
    assert status is not None
    error = error_pb2.Error()
    assert status.details[0].Unpack(error)
    assert error.code == error_pb2.ERROR_CODE_RESOURCE_EXHAUSTED
    return refused.code(), error.reason


def _retried_refusal(stack: Stack, admin: Account) -> list[Item]:
    """A refusal other than the full server's, which lasts until a cancellation is seen."""
    deadline = time.monotonic() + 5
    while True:
        items = Tail(stack, admin.metadata).take(2)
        if _refusal(items)[1] != "TAIL_STREAMS_EXHAUSTED" or time.monotonic() > deadline:
            return items


@pytest.mark.parametrize("server_model", ["thread", "aio"])
def test_open_tails_are_bounded_per_admin_and_a_closed_one_frees_its_place(
    stack: Stack,
) -> None:
    first, second, third = stack.admin(), stack.admin(), stack.admin()
    share = stack.audit_settings.streams_per_user
    tails = [Tail(stack, admin.metadata).live() for admin in (first, second) for _ in range(share)]
    assert len(tails) == MAX_TAILS

    full = _refusal(Tail(stack, third.metadata).take(2))
    tails.pop().call.cancel()  # a place is free, but not for an admin who holds a full share
    over_share = _refusal(_retried_refusal(stack, first))
    tails[0].call.cancel()
    deadline = time.monotonic() + 5
    again = Tail(stack, third.metadata)
    while not again.quiet(0.5):  # refused: the server has not seen the cancellation yet
        assert time.monotonic() < deadline, "the cancelled tail never freed its place"
        again = Tail(stack, third.metadata)
    stack.ingest([make_event("org-a")])
    delivered = again.events(1)
    for tail in [*tails[1:], again]:
        tail.call.cancel()

    assert full == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TAIL_STREAMS_EXHAUSTED")
    assert over_share == (grpc.StatusCode.RESOURCE_EXHAUSTED, "STREAMS_PER_USER_EXHAUSTED")
    assert len(delivered) == 1


def test_past_the_process_limit_a_tail_is_refused_whoever_asks(audit_url: str) -> None:
    db = Database(audit_url)
    tails = Tails(db, limit=2, per_user=1, per_organization=1)
    try:
        with (
            tails.slot("ada", "org-a"),
            tails.slot("bea", "org-b"),
            pytest.raises(StreamLimitError) as refused,
            tails.slot("cy", "org-c"),
        ):
            pass
        with tails.slot("cy", "org-c"):  # both places are free again
            pass
    finally:
        db.dispose()

    assert refused.value.reason == "TAIL_STREAMS_EXHAUSTED"
    assert refused.value.as_status


@pytest.mark.parametrize("server_model", ["thread", "aio"])
def test_a_stopping_server_ends_its_tails(stack: Stack) -> None:
    admin = stack.admin()
    server = start_audit(stack.audit_settings, port=0)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        other = Stack(
            stack.auth_settings,
            stack.audit_settings,
            stack.auth,
            audit_grpc.AuditServiceStub(channel),
        )
        tail = Tail(other, admin.metadata).live()
        # A tail still open when the grace ran out would be CANCELLED; one ended as the
        # stop begins gets UNAVAILABLE with the Error, which clients' retry logic follows.
        server.stop(10)
        refused, end = tail.take(2)
    finally:
        channel.close()

    assert isinstance(refused, grpc.RpcError), refused
    assert end is None
    status = rpc_status.from_call(refused)  # type: ignore[arg-type]  # the error is the call
    assert status is not None
    error = error_pb2.Error()
    assert status.details[0].Unpack(error)
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    assert (error.code, error.reason) == (error_pb2.ERROR_CODE_UNAVAILABLE, "SERVER_STOPPING")


@pytest.mark.parametrize("server_model", ["aio"])
def test_the_aio_server_model_refuses_alike(stack: Stack) -> None:
    refused = Tail(stack, (*stack.user().metadata, ("x-request-id", "req-aio"))).take(2)

    response = refused[0]
    assert isinstance(response, audit_pb.TailAuditEventsResponse), refused
    assert (response.error.reason, response.error.request_id) == ("ADMIN_REQUIRED", "req-aio")
    assert refused[1] is None


def test_closing_ends_followers_and_no_read_follows(audit_url: str) -> None:
    db = Database(audit_url)
    upgrade(db, "services.audit:migrations")
    tails = Tails(db, poll_seconds=0.05)
    query = TailQuery(action="", organization_id="", after_sequence=None)
    stopped = threading.Event()
    followed: list[object] = []
    ended: list[UnavailableError] = []

    def follow() -> None:
        try:
            followed.extend(tails.follow(query, tails.start(query), stopped))
        except UnavailableError as exc:  # how a closed tail ends: the reason goes to the client
            ended.append(exc)

    follower = threading.Thread(target=follow)
    try:
        follower.start()
        time.sleep(0.2)  # a few polls in
        tails.close()
        follower.join(2)
        with pytest.raises(UnavailableError):
            tails.start(query)
    finally:
        db.dispose()

    assert not follower.is_alive()
    assert stopped.is_set()
    assert followed == []
    assert [e.reason for e in ended] == ["SERVER_STOPPING"]
