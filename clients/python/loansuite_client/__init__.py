"""loansuite_client: typed synchronous and asyncio clients for the loansuite services.

    with Loansuite(auth="localhost:50051", loans="localhost:50052",
                   audit="localhost:50053") as suite:
        suite.session.login("ada@example.com", "correct horse battery")
        loan = suite.loans.create_loan(loans_pb.CreateLoanRequest(name=..., ...))

Every method takes the request message and returns the envelope's payload, or
raises the error as the class of its code (errors.py). Mutations get a
``request_id`` when they have none, kept across retries of ``UNAVAILABLE``.
"""

from __future__ import annotations

from types import TracebackType

import grpc

from loansuite_client import errors
from loansuite_client._calls import READ_METHODS, SERVICE_CONFIG, RetryPolicy
from loansuite_client._services import (
    AsyncAuditServiceClient,
    AsyncAuthServiceClient,
    AsyncLoanServiceClient,
    AuditServiceClient,
    AuthServiceClient,
    LoanServiceClient,
)
from loansuite_client.errors import LoansuiteError
from loansuite_client.session import AsyncSession, Session
from loansuite_client.watch import Subscribed, async_watch_loans, watch_loans

__all__ = [
    "READ_METHODS",
    "SERVICE_CONFIG",
    "AsyncAuditServiceClient",
    "AsyncAuthServiceClient",
    "AsyncLoanServiceClient",
    "AsyncLoansuite",
    "AsyncSession",
    "AuditServiceClient",
    "AuthServiceClient",
    "LoanServiceClient",
    "Loansuite",
    "LoansuiteError",
    "RetryPolicy",
    "Session",
    "Subscribed",
    "async_watch_loans",
    "errors",
    "watch_loans",
]


def _channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(target)
    return grpc.secure_channel(target, credentials)


class Loansuite:
    """Clients of the three services sharing one signed-in session (synchronous)."""

    def __init__(
        self,
        *,
        auth: str,
        loans: str,
        audit: str,
        credentials: grpc.ChannelCredentials | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._channels = [_channel(t, credentials) for t in (auth, loans, audit)]
        auth_channel, loans_channel, audit_channel = self._channels
        self.session = Session(AuthServiceClient(auth_channel, None, retry))
        self.auth = AuthServiceClient(auth_channel, self.session, retry)
        self.loans = LoanServiceClient(loans_channel, self.session, retry)
        self.audit = AuditServiceClient(audit_channel, self.session, retry)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> Loansuite:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncLoansuite:
    """Clients of the three services sharing one signed-in session (asyncio)."""

    def __init__(
        self,
        *,
        auth: str,
        loans: str,
        audit: str,
        credentials: grpc.ChannelCredentials | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._channels = [
            grpc.aio.insecure_channel(t)
            if credentials is None
            else grpc.aio.secure_channel(t, credentials)
            for t in (auth, loans, audit)
        ]
        auth_channel, loans_channel, audit_channel = self._channels
        self.session = AsyncSession(AsyncAuthServiceClient(auth_channel, None, retry))
        self.auth = AsyncAuthServiceClient(auth_channel, self.session, retry)
        self.loans = AsyncLoanServiceClient(loans_channel, self.session, retry)
        self.audit = AsyncAuditServiceClient(audit_channel, self.session, retry)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close(None)

    async def __aenter__(self) -> AsyncLoansuite:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
