"""What every group of LoanService RPCs shares: the caller, one transaction, idempotency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import grpc
from loansuite.loans.v1 import loan_service_pb2_grpc as pb_grpc
from sqlalchemy.orm import Session

from services.loans.bus import ChangeBus
from services.loans.models import IdempotencyRecord
from services.shared.auth_client import UserFinder
from services.shared.db import Database
from services.shared.idempotency import IdempotencyKey, run_idempotent
from services.shared.identity import Authenticator, Caller
from services.shared.paging import PageTokens

__all__ = ["LoanRpcBase"]


class _Message(Protocol):
    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


class _Keyed(_Message, Protocol):
    @property
    def request_id(self) -> str: ...


Resp = TypeVar("Resp", bound=_Message)


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
    ) -> None:
        self._db = db
        self._auth = authenticator
        self._pages = page_tokens
        self._users = users  # finds invited lenders by email; None where nothing invites
        self._bus = bus  # WatchLoans subscriptions; None where nothing notifies

    def _caller(self, context: grpc.ServicerContext) -> Caller:
        """Steps 1 and 2: verify the bearer token and load the current user."""
        return self._auth.authenticate(context.invocation_metadata())

    def _mutate(
        self,
        rpc: str,
        request: _Keyed,
        caller: Caller,
        response_type: Callable[[bytes], Resp],
        write: Callable[[Session], Resp],
    ) -> Resp:
        """Steps 5 and 6 in one transaction; a request_id makes a replay return the original."""
        key = None
        if request.request_id:
            key = IdempotencyKey.of(
                scope=caller.user_id,
                rpc=rpc,
                request_id=request.request_id,
                request=request.SerializeToString(deterministic=True),
            )
        stored = run_idempotent(
            self._db, IdempotencyRecord, key, lambda session: write(session).SerializeToString()
        )
        return response_type(stored)
