"""WatchLoans that survives restarts and interruptions.

``watch_loans()`` yields ``Subscribed`` each time a subscription is live (the
server's ``x-watch: subscribed`` header: from then on every committed change
reaches the stream) and each ``LoanChange``. When the stream is interrupted
(UNAVAILABLE, a server that stops, a change feed that broke, a subscriber that
fell behind) it subscribes again after a back-off. Changes made in between are
not replayed, so a caller re-reads what it shows on every ``Subscribed`` after
the first. A refusal that waiting does not cure (authentication, a quota) is
raised.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass

import grpc
from loansuite.loans.v1 import loan_service_pb2 as loans_pb

from loansuite_client._calls import AsyncCalls, Calls, RetryPolicy, _metadata, unwrap
from loansuite_client.errors import LoansuiteError, UnavailableError, from_rpc_error

__all__ = ["Subscribed", "async_watch_loans", "watch_loans"]

_METHOD = "/loansuite.loans.v1.LoanService/WatchLoans"
_RESUMABLE_REASONS = frozenset({"SUBSCRIBER_TOO_SLOW", "CHANGE_FEED_INTERRUPTED"})
_BACKOFF = RetryPolicy(initial_backoff=0.2, max_backoff=5.0)


@dataclass(frozen=True)
class Subscribed:
    """The subscription is live: every change committed from now on will arrive."""


def _resumable(exc: BaseException) -> bool:
    if isinstance(exc, LoansuiteError):
        return isinstance(exc, UnavailableError) or exc.reason in _RESUMABLE_REASONS
    code = getattr(exc, "code", None)
    return (
        isinstance(exc, grpc.RpcError)
        and code is not None
        and code() == grpc.StatusCode.UNAVAILABLE
    )


def _subscribed(metadata: object) -> bool:
    return any(k == "x-watch" and v == "subscribed" for k, v in metadata or ())  # type: ignore[attr-defined]


def watch_loans(
    loans: Calls, stop: threading.Event | None = None
) -> Iterator[Subscribed | loans_pb.LoanChange]:
    """Changes to the caller's loans, subscribing again whenever the stream is interrupted."""
    stop = stop or threading.Event()
    call_of = loans.channel.unary_stream(
        _METHOD,
        request_serializer=loans_pb.WatchLoansRequest.SerializeToString,
        response_deserializer=loans_pb.WatchLoansResponse.FromString,
    )
    attempt = 1
    while not stop.is_set():
        bearer = loans.tokens.bearer() if loans.tokens else None
        call = call_of(loans_pb.WatchLoansRequest(), metadata=_metadata(bearer))
        stopper = threading.Thread(target=lambda c=call: (stop.wait(), c.cancel()), daemon=True)
        stopper.start()
        try:
            if _subscribed(call.initial_metadata()):
                attempt = 1
                yield Subscribed()
            for response in call:
                yield unwrap(response, "change")
        except (grpc.RpcError, LoansuiteError) as exc:
            known = (from_rpc_error(exc) or exc) if isinstance(exc, grpc.RpcError) else exc
            if stop.is_set():
                return
            if not _resumable(known):
                raise known from exc
        finally:
            call.cancel()
        stop.wait(_BACKOFF.delay(attempt))
        attempt += 1


async def async_watch_loans(
    loans: AsyncCalls,
) -> AsyncGenerator[Subscribed | loans_pb.LoanChange, None]:
    """The asyncio form of watch_loans; cancel the consuming task to stop it."""
    call_of = loans.channel.unary_stream(
        _METHOD,
        request_serializer=loans_pb.WatchLoansRequest.SerializeToString,
        response_deserializer=loans_pb.WatchLoansResponse.FromString,
    )
    attempt = 1
    while True:
        bearer = await loans.tokens.bearer() if loans.tokens else None
        call = call_of(loans_pb.WatchLoansRequest(), metadata=_metadata(bearer))
        try:
            if _subscribed(await call.initial_metadata()):
                attempt = 1
                yield Subscribed()
            async for response in call:
                yield unwrap(response, "change")
        except (grpc.RpcError, LoansuiteError) as exc:
            known = (from_rpc_error(exc) or exc) if isinstance(exc, grpc.RpcError) else exc
            if not _resumable(known):
                raise known from exc
        finally:
            call.cancel()
        await asyncio.sleep(_BACKOFF.delay(attempt))
        attempt += 1
