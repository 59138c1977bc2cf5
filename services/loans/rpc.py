"""What every LoanService RPC shares: the caller, and mutations declared once.

A mutating RPC is a method decorated with ``@mutation(ResponseType)``. The
decorator authenticates the caller (steps 1 and 2), lets the method validate
what needs no database (step 4) and hand back its write, then runs that write
in one transaction (steps 3, 5, 6 and 7 happen inside it) made idempotent by
the request's ``request_id``. The RPC's name, which keys idempotency records,
is the method's own name; the response type is named once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import grpc
from loansuite.common.v1 import error_pb2
from loansuite.loans.v1 import loan_service_pb2_grpc as pb_grpc
from sqlalchemy.orm import Session

from services.loans.calendar.clock import Today, utc_today
from services.loans.models import IdempotencyRecord
from services.loans.watching.bus import ChangeBus
from services.shared.auth_client import UserFinder
from services.shared.db import Database
from services.shared.envelope import unary
from services.shared.idempotency import IdempotencyKey, run_idempotent
from services.shared.identity import Authenticator, Caller
from services.shared.paging import PageTokens

__all__ = ["LoanRpcBase", "Write", "mutation"]


class _Message(Protocol):
    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


class _Keyed(_Message, Protocol):
    @property
    def request_id(self) -> str: ...


class _Envelope(_Message, Protocol):
    def HasField(self, field_name: Any, /) -> bool: ...

    @property
    def error(self) -> error_pb2.Error: ...


Req = TypeVar("Req", bound=_Keyed)
Resp = TypeVar("Resp", bound=_Envelope)
Resp_co = TypeVar("Resp_co", bound=_Envelope, covariant=True)
Rpcs = TypeVar("Rpcs", bound="LoanRpcBase")
# The transactional part of a mutation: given the session, the response.
Write = Callable[[Session], Resp]


class _ResponseType(Protocol[Resp_co]):
    """A generated response class: built from fields, parsed from bytes."""

    def __call__(self, *, error: error_pb2.Error = ...) -> Resp_co: ...

    def FromString(self, data: bytes, /) -> Resp_co: ...


class LoanRpcBase(pb_grpc.LoanServiceServicer):
    """State and helpers of the LoanService servicer; the RPC groups subclass it."""

    def __init__(
        self,
        db: Database,
        authenticator: Authenticator,
        page_tokens: PageTokens,
        *,
        users: UserFinder | None = None,
        bus: ChangeBus | None = None,
        today: Today = utc_today,
    ) -> None:
        self._db = db
        self._auth = authenticator
        self._pages = page_tokens
        self._users = users  # finds invited lenders by email; None where nothing invites
        self._bus = bus  # WatchLoans subscriptions; None where nothing notifies
        self._today = today  # the business date (calendar/clock.py): tests choose theirs

    def _caller(self, context: grpc.ServicerContext) -> Caller:
        """Steps 1 and 2: verify the bearer token and load the current user."""
        return self._auth.authenticate(context.invocation_metadata())

    def _run(
        self,
        rpc: str,
        request: _Keyed,
        caller: Caller,
        parse: Callable[[bytes], Resp],
        write: Write[Resp],
    ) -> Resp:
        """The write in one transaction; a request_id makes a replay return the original."""
        if not request.request_id:
            return self._db.submit(write)  # nothing to store: the response as it is
        key = IdempotencyKey.of(
            scope=caller.user_id,
            rpc=rpc,
            request_id=request.request_id,
            request=request.SerializeToString(deterministic=True),
        )
        stored = run_idempotent(
            self._db, IdempotencyRecord, key, lambda session: write(session).SerializeToString()
        )
        return parse(stored)


Prepare = Callable[[Rpcs, Req, Caller], Write[Resp]]
Handler = Callable[[Rpcs, Req, grpc.ServicerContext], Resp]


def mutation(
    response_type: _ResponseType[Resp],
) -> Callable[[Prepare[Rpcs, Req, Resp]], Handler[Rpcs, Req, Resp]]:
    """Declare a mutating RPC: the method takes the caller and returns its write."""

    def decorate(prepare: Prepare[Rpcs, Req, Resp]) -> Handler[Rpcs, Req, Resp]:
        rpc = prepare.__name__

        @functools.wraps(prepare)
        def handler(self: Rpcs, request: Req, context: grpc.ServicerContext) -> Resp:
            caller = self._caller(context)
            write = prepare(self, request, caller)
            return self._run(rpc, request, caller, response_type.FromString, write)

        return unary(response_type)(handler)

    return decorate
