"""A signed-in session that keeps its access token fresh.

The clients ask it for a bearer token before every call; when the access
token has less than a margin of life left, it first trades the refresh token
for a new session (once, however many calls are waiting).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from loansuite.auth.v1 import auth_service_pb2 as auth_pb

from loansuite_client._services import AsyncAuthServiceClient, AuthServiceClient

__all__ = ["REFRESH_MARGIN_SECONDS", "AsyncSession", "Session"]

REFRESH_MARGIN_SECONDS = 30.0


def _fresh(session: auth_pb.Session | None, now: float) -> bool:
    if session is None or not session.HasField("access_token_expire_time"):
        return True
    expires = session.access_token_expire_time.ToNanoseconds() / 1e9
    return expires - now > REFRESH_MARGIN_SECONDS


class Session:
    """The session of one user, for synchronous clients."""

    def __init__(self, auth: AuthServiceClient, clock: Callable[[], float] = time.time) -> None:
        self._auth = auth  # a client that sends no token: login and refresh need none
        self._clock = clock
        self._lock = threading.Lock()
        self.current: auth_pb.Session | None = None

    def login(self, email: str, password: str) -> auth_pb.Session:
        """Sign in; later calls carry this session's token."""
        session = self._auth.login(auth_pb.LoginRequest(email=email, password=password))
        self.current = session
        return session

    def bearer(self) -> str | None:
        """The access token to send, refreshed first when it is about to expire."""
        with self._lock:
            if not _fresh(self.current, self._clock()):
                self._refresh()
            return self.current.access_token if self.current else None

    def refresh(self) -> auth_pb.Session:
        """Trade the refresh token for a new session now."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> auth_pb.Session:
        token = self.current.refresh_token if self.current else ""
        self.current = self._auth.refresh_session(
            auth_pb.RefreshSessionRequest(refresh_token=token)
        )
        return self.current

    def logout(self) -> None:
        """Revoke the refresh token and forget the session."""
        current, self.current = self.current, None
        if current is not None:
            self._auth.logout(auth_pb.LogoutRequest(refresh_token=current.refresh_token))


class AsyncSession:
    """The session of one user, for asyncio clients."""

    def __init__(
        self, auth: AsyncAuthServiceClient, clock: Callable[[], float] = time.time
    ) -> None:
        self._auth = auth
        self._clock = clock
        self._lock = asyncio.Lock()
        self.current: auth_pb.Session | None = None

    async def login(self, email: str, password: str) -> auth_pb.Session:
        """Sign in; later calls carry this session's token."""
        session = await self._auth.login(auth_pb.LoginRequest(email=email, password=password))
        self.current = session
        return session

    async def bearer(self) -> str | None:
        """The access token to send, refreshed first when it is about to expire."""
        async with self._lock:
            if not _fresh(self.current, self._clock()):
                await self._refresh()
            return self.current.access_token if self.current else None

    async def refresh(self) -> auth_pb.Session:
        """Trade the refresh token for a new session now."""
        async with self._lock:
            return await self._refresh()

    async def _refresh(self) -> auth_pb.Session:
        token = self.current.refresh_token if self.current else ""
        self.current = await self._auth.refresh_session(
            auth_pb.RefreshSessionRequest(refresh_token=token)
        )
        return self.current

    async def logout(self) -> None:
        """Revoke the refresh token and forget the session."""
        current, self.current = self.current, None
        if current is not None:
            await self._auth.logout(auth_pb.LogoutRequest(refresh_token=current.refresh_token))
