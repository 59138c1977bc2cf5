"""How every method of the generated clients calls its service.

Each call carries the session's bearer token and an ``x-request-id``. A
mutation with an empty ``request_id`` gets a fresh one, and keeps it on every
retry, so that the service answers a replay with the original response: that
makes mutations as safe to retry as reads. ``UNAVAILABLE`` is retried with
back-off; every other outcome is answered at once. The envelope's payload is
returned; its error is raised as the class of its code (errors.py).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, cast

import grpc
from google.protobuf.message import Message

from loansuite_client.errors import LoansuiteError, from_message, from_rpc_error

__all__ = [
    "READ_METHODS",
    "SERVICE_CONFIG",
    "AsyncCalls",
    "Calls",
    "RetryPolicy",
    "TokenSource",
    "unwrap",
]

P = TypeVar("P", bound=Message)
R = TypeVar("R", bound=Message)

# Safe to repeat whatever they carry; the same list as ../service-config.json.
READ_METHODS = frozenset(
    {
        "loansuite.auth.v1.AuthService/GetUser",
        "loansuite.auth.v1.AuthService/WhoAmI",
        "loansuite.auth.v1.AuthService/ListPublicKeys",
        "loansuite.loans.v1.LoanService/GetLoan",
        "loansuite.loans.v1.LoanService/ListLoans",
        "loansuite.loans.v1.LoanService/ListLoanHistory",
        "loansuite.loans.v1.LoanService/ListKpis",
        "loansuite.loans.v1.LoanService/ListKpiResults",
        "loansuite.loans.v1.LoanService/ListMarginAdjustments",
        "loansuite.audit.v1.AuditService/ListAuditEvents",
        "loansuite.audit.v1.AuditService/VerifyChain",
    }
)


# The gRPC service config that retries UNAVAILABLE on the reads, for clients of the
# services that do not use this package: grpc.insecure_channel(target, options=[
# ("grpc.service_config", SERVICE_CONFIG)]). The same as ../service-config.json.
SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [
                    {"service": name.split("/")[0], "method": name.split("/")[1]}
                    for name in sorted(READ_METHODS)
                ],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts in all (the first included) and the exponential back-off between them."""

    max_attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds before attempt + 1, with jitter."""
        backoff = min(self.max_backoff, self.initial_backoff * 2.0 ** (attempt - 1))
        return backoff * random.uniform(0.5, 1.0)


class TokenSource(Protocol):
    def bearer(self) -> str | None: ...


class AsyncTokenSource(Protocol):
    async def bearer(self) -> str | None: ...


def unwrap(response: Message, payload: str) -> Any:
    """The envelope's payload (the oneof's other field than error), or its error raised."""
    which = response.WhichOneof("result")
    if which == "error":
        raise from_message(response.error)  # type: ignore[attr-defined]
    if which is None:
        raise LoansuiteError("the response holds neither a result nor an error", reason="EMPTY")
    return getattr(response, which)


def _with_request_id(request: P) -> P:
    """The request, given a fresh request_id if it has that field and it is empty."""
    field = request.DESCRIPTOR.fields_by_name.get("request_id")
    if field is None or getattr(request, field.name):
        return request
    copy = type(request)()
    copy.CopyFrom(request)
    setattr(copy, "request_id", uuid.uuid4().hex)  # noqa: B010 (a field of some requests)
    return copy


def _repeatable(name: str, request: Message) -> bool:
    return name in READ_METHODS or bool(getattr(request, "request_id", ""))


def _metadata(bearer: str | None) -> tuple[tuple[str, str], ...]:
    request_id = ("x-request-id", uuid.uuid4().hex)
    return (request_id,) if bearer is None else (request_id, ("authorization", f"Bearer {bearer}"))


def _retryable(exc: grpc.RpcError) -> bool:
    code = getattr(exc, "code", None)
    return code is not None and code() == grpc.StatusCode.UNAVAILABLE


class Calls:
    """The synchronous call path that the generated service clients share."""

    service: ClassVar[str]

    def __init__(
        self,
        channel: grpc.Channel,
        tokens: TokenSource | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.channel = channel
        self.tokens = tokens
        self._retry = retry or RetryPolicy()
        self._callables: dict[str, Callable[..., Any]] = {}

    def _callable(self, method: str, response_type: type[Message], stream: bool) -> Any:
        if method not in self._callables:
            make = self.channel.unary_stream if stream else self.channel.unary_unary
            self._callables[method] = make(
                f"/{self.service}/{method}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_type.FromString,
            )
        return self._callables[method]

    def _unary(
        self,
        method: str,
        request: Message,
        response_type: type[Message],
        payload: str,
        payload_type: type[R],
        timeout: float | None,
    ) -> R:
        request = _with_request_id(request)
        call = self._callable(method, response_type, stream=False)
        repeatable = _repeatable(f"{self.service}/{method}", request)
        attempt = 1
        while True:
            bearer = self.tokens.bearer() if self.tokens else None
            try:
                response = call(request, timeout=timeout, metadata=_metadata(bearer))
            except grpc.RpcError as exc:
                if repeatable and attempt < self._retry.max_attempts and _retryable(exc):
                    time.sleep(self._retry.delay(attempt))
                    attempt += 1
                    continue
                raise (from_rpc_error(exc) or exc) from exc
            return cast(R, unwrap(response, payload))

    def _stream(
        self,
        method: str,
        request: Message,
        response_type: type[Message],
        payload: str,
        payload_type: type[R],
        timeout: float | None,
    ) -> Iterator[R]:
        call = self._callable(method, response_type, stream=True)
        bearer = self.tokens.bearer() if self.tokens else None
        try:
            for response in call(request, timeout=timeout, metadata=_metadata(bearer)):
                yield cast(R, unwrap(response, payload))
        except grpc.RpcError as exc:
            raise (from_rpc_error(exc) or exc) from exc


class AsyncCalls:
    """The asyncio call path that the generated service clients share."""

    service: ClassVar[str]

    def __init__(
        self,
        channel: grpc.aio.Channel,
        tokens: AsyncTokenSource | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.channel = channel
        self.tokens = tokens
        self._retry = retry or RetryPolicy()
        self._callables: dict[str, Any] = {}

    def _callable(self, method: str, response_type: type[Message], stream: bool) -> Any:
        if method not in self._callables:
            make = self.channel.unary_stream if stream else self.channel.unary_unary
            self._callables[method] = make(
                f"/{self.service}/{method}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_type.FromString,
            )
        return self._callables[method]

    async def _unary(
        self,
        method: str,
        request: Message,
        response_type: type[Message],
        payload: str,
        payload_type: type[R],
        timeout: float | None,
    ) -> R:
        request = _with_request_id(request)
        call = self._callable(method, response_type, stream=False)
        repeatable = _repeatable(f"{self.service}/{method}", request)
        attempt = 1
        while True:
            bearer = await self.tokens.bearer() if self.tokens else None
            try:
                response = await call(request, timeout=timeout, metadata=_metadata(bearer))
            except grpc.RpcError as exc:
                if repeatable and attempt < self._retry.max_attempts and _retryable(exc):
                    await asyncio.sleep(self._retry.delay(attempt))
                    attempt += 1
                    continue
                raise (from_rpc_error(exc) or exc) from exc
            return cast(R, unwrap(response, payload))

    async def _stream(
        self,
        method: str,
        request: Message,
        response_type: type[Message],
        payload: str,
        payload_type: type[R],
        timeout: float | None,
    ) -> AsyncIterator[R]:
        call = self._callable(method, response_type, stream=True)
        bearer = await self.tokens.bearer() if self.tokens else None
        try:
            async for response in call(request, timeout=timeout, metadata=_metadata(bearer)):
                yield cast(R, unwrap(response, payload))
        except grpc.RpcError as exc:
            raise (from_rpc_error(exc) or exc) from exc
