"""WatchLoans: change notifications for the caller's organization, after commit.

A stream holds a server worker thread for as long as it is open, so it is
admitted by the bus (at most half the pool by default, and a share of that per
user and per organization; past either, gRPC status RESOURCE_EXHAUSTED), wakes every
``WAKE_SECONDS`` to notice a client that went away without a cancellation
callback, re-authenticates every ``RECHECK_SECONDS`` (an expired token or a
deactivated user ends the stream as it would fail a unary call), and ends at
once when the server starts to stop.

As soon as the subscription is live the stream sends initial metadata with
``x-watch: subscribed``: a client that waits for it knows that every change
committed from then on reaches it. (A refused stream sends no such header,
only its one error.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb

from services.loans.aggregate import require_party
from services.loans.rpc import LoanRpcBase
from services.loans.watching.bus import Subscription, SubscriptionClosedError
from services.loans.watching.changes import LoanChanged
from services.shared.envelope import streaming
from services.shared.errors import PermissionDeniedError, UnavailableError
from services.shared.identity import Caller
from services.shared.timestamps import timestamp

__all__ = ["RECHECK_SECONDS", "SUBSCRIBED", "WAKE_SECONDS", "WatchRpcs"]

WAKE_SECONDS = 1.0
RECHECK_SECONDS = 5.0
SUBSCRIBED = ("x-watch", "subscribed")


class WatchRpcs(LoanRpcBase):
    @streaming(pb.WatchLoansResponse)
    def WatchLoans(
        self, request: pb.WatchLoansRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchLoansResponse]:
        """Stream a LoanChange for each committed change to a loan of the caller's organization."""
        caller = self._caller(context)
        require_party(caller)
        if self._bus is None:
            raise UnavailableError("change notifications are not served here", reason="NO_WATCH")
        subscription = self._bus.subscribe(caller.organization_id, caller.user_id)
        try:
            if not _on_termination(context, subscription.end):
                return
            context.send_initial_metadata((SUBSCRIBED,))  # the client may now rely on it
            yield from self._changes(caller, subscription, context)
        finally:
            self._bus.unsubscribe(subscription)

    def _changes(
        self, caller: Caller, subscription: Subscription, context: grpc.ServicerContext
    ) -> Iterator[pb.WatchLoansResponse]:
        recheck_at = time.monotonic() + RECHECK_SECONDS
        while True:
            try:
                change = subscription.next(timeout=WAKE_SECONDS)
            except SubscriptionClosedError:
                return  # the client went away
            if change is not None:
                yield pb.WatchLoansResponse(change=_change_to_proto(change))
            elif not _is_active(context):
                return
            if time.monotonic() >= recheck_at:
                self._recheck(caller, context)
                recheck_at = time.monotonic() + RECHECK_SECONDS

    def _recheck(self, caller: Caller, context: grpc.ServicerContext) -> None:
        """The subscriber must still be who it was: token valid, user active, same organization."""
        current = self._caller(context)
        require_party(current)
        if current.organization_id != caller.organization_id:
            raise PermissionDeniedError(
                "the caller's organization changed; subscribe again", reason="ORGANIZATION_CHANGED"
            )


def _on_termination(context: grpc.ServicerContext, end: Callable[[], None]) -> bool:
    """Wake the stream as soon as the call ends; False when it has ended already."""
    # The thread-pool server answers False for a call that already ended; grpc.aio's
    # context for synchronous handlers answers None.
    return context.add_callback(end) is not False


def _is_active(context: grpc.ServicerContext) -> bool:
    is_active = getattr(context, "is_active", None)
    return is_active is None or bool(is_active())


def _change_to_proto(change: LoanChanged) -> pb.LoanChange:
    return pb.LoanChange(
        loan_id=change.loan_id,
        kind=pb.ChangeKind.Value(change.kind.wire),
        etag=change.etag,
        change_time=timestamp(change.change_time),
    )
