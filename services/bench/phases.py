"""The client side: logged-in borrowers, the call of each phase, and the phase runner.

A pool of borrowers logs in once and reuses its access tokens, as real clients
do. Every phase runs the same number of concurrent callers for the same time;
a call that fails stops the benchmark instead of being counted.
"""

from __future__ import annotations

import itertools
import random
import secrets
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.loans.v1 import loan_service_pb2 as loans_pb
from loansuite.loans.v1 import loan_service_pb2_grpc as loans_grpc
from loansuite_client import AuthServiceClient, Session

from services.shared._types import Metadata

__all__ = [
    "Borrowers",
    "Call",
    "Connections",
    "Measured",
    "create_loan_call",
    "get_loan_call",
    "health_call",
    "list_loans_call",
    "log_in_borrowers",
    "measure",
    "percentile_ms",
    "run_phase",
]

Call = Callable[[], None]
_TIMEOUT = 10.0
LIST_PAGE_SIZE = 25


@dataclass(frozen=True)
class Measured:
    """One measured phase: calls per second, each call's latency (s), CPU ms per call."""

    rps: float
    latencies: list[float]
    cpu_ms_per_call: dict[str, float]


class Borrowers:
    """Logged-in borrowers: the call metadata of each, and the ids of the loans each created."""

    def __init__(self, tokens: list[str]) -> None:
        self.metadata: list[Metadata] = [(("authorization", f"Bearer {t}"),) for t in tokens]
        # list.append is atomic, so the callers of one borrower may share its list.
        self.loans: list[list[str]] = [[] for _ in tokens]

    def owners(self) -> list[tuple[Metadata, list[str]]]:
        """Each borrower that owns a loan: its metadata and its loan ids."""
        found = [(md, ids) for md, ids in zip(self.metadata, self.loans, strict=True) if ids]
        if not found:
            raise RuntimeError("no borrower owns a loan to read")
        return found


class Connections(grpc.Channel):
    """A channel whose calls take several connections to one target in turn.

    With ``serve --workers N`` the kernel hands each connection to one worker
    (SO_REUSEPORT), and a gRPC channel keeps one connection per target: the calls of
    one channel would all reach the same worker. Each channel here has its own
    subchannel pool, so each opens a connection of its own. Streams take the first.
    """

    def __init__(self, target: str, count: int) -> None:
        options = [("grpc.use_local_subchannel_pool", 1)]
        self.channels = [grpc.insecure_channel(target, options=options) for _ in range(count)]

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _InTurn([channel.unary_unary(method, *args, **kwargs) for channel in self.channels])

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.channels[0].unary_stream(method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.channels[0].stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self.channels[0].stream_stream(method, *args, **kwargs)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self.channels[0].subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self.channels[0].unsubscribe(callback)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _InTurn:
    """One method's callables, one per connection, each call taking the next."""

    def __init__(self, each: list[Any]) -> None:
        self._next = itertools.cycle(each).__next__  # one step is atomic under the GIL

    def __call__(self, request: Any, **options: Any) -> Any:
        return self._next()(request, **options)

    def future(self, request: Any, **options: Any) -> Any:
        return self._next().future(request, **options)

    def with_call(self, request: Any, **options: Any) -> Any:
        return self._next().with_call(request, **options)


def measure(
    cpu_seconds: Callable[[], dict[str, float]], call: Call, concurrency: int, seconds: float
) -> Measured:
    """A phase, plus the CPU time each process spent per call during it."""
    before = cpu_seconds()
    rps, latencies = run_phase(call, concurrency, seconds)
    after = cpu_seconds()
    calls = max(len(latencies), 1)
    cpu = {name: round((after[name] - before[name]) * 1000 / calls, 3) for name in after}
    return Measured(rps, latencies, cpu)


def run_phase(call: Call, concurrency: int, seconds: float) -> tuple[float, list[float]]:
    """Run call from `concurrency` threads for `seconds`; calls/s and latencies in seconds."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    failures: list[Exception] = []
    deadline = time.perf_counter() + seconds

    def worker(mine: list[float]) -> None:
        try:
            while not failures and (start := time.perf_counter()) < deadline:
                call()
                mine.append(time.perf_counter() - start)
        except Exception as exc:  # re-raised below, in the caller's thread
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(lat,)) for lat in latencies]
    begun = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    merged = [x for lat in latencies for x in lat]
    return len(merged) / (time.perf_counter() - begun), merged


def health_call(channel: grpc.Channel) -> Call:
    """Health/Check: the floor of the server stack."""
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest()

    def call() -> None:
        if stub.Check(request, timeout=_TIMEOUT).status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError("loans is not serving")

    return call


def create_loan_call(channel: grpc.Channel, borrowers: Borrowers) -> Call:
    """CreateLoan with a fresh request_id, the borrowers in turn; keeps each new loan's id."""
    stub = loans_grpc.LoanServiceStub(channel)
    counter = iter(range(10**12))
    lock = threading.Lock()

    def call() -> None:
        with lock:
            n = next(counter)
        request = create_loan_request(f"Bench loan {n}")
        who = n % len(borrowers.metadata)
        response = stub.CreateLoan(request, metadata=borrowers.metadata[who], timeout=_TIMEOUT)
        if not response.HasField("loan"):
            raise RuntimeError(f"CreateLoan failed: {response.error}")
        borrowers.loans[who].append(response.loan.id)

    return call


def create_loan_request(name: str) -> loans_pb.CreateLoanRequest:
    """The benchmark's loan, with a fresh request_id: every call is a new write."""
    return loans_pb.CreateLoanRequest(
        name=name,
        loan_type=loans_pb.LOAN_TYPE_FIXED_RATE,
        currency_code="EUR",
        principal_amount="1250000.00",
        committed_amount="1000000.00",
        drawn_amount="0.00",
        start_date="2027-01-01",
        maturity_date="2032-01-01",
        request_id=uuid.uuid4().hex,
    )


def get_loan_call(channel: grpc.Channel, borrowers: Borrowers) -> Call:
    """GetLoan of a random loan that the calling (random) borrower owns."""
    stub = loans_grpc.LoanServiceStub(channel)
    owners = borrowers.owners()

    def call() -> None:
        metadata, ids = random.choice(owners)
        loan_id = random.choice(ids)
        request = loans_pb.GetLoanRequest(loan_id=loan_id)
        response = stub.GetLoan(request, metadata=metadata, timeout=_TIMEOUT)
        if not response.HasField("loan") or response.loan.id != loan_id:
            raise RuntimeError(f"GetLoan failed: {response.error}")

    return call


def list_loans_call(channel: grpc.Channel, borrowers: Borrowers) -> Call:
    """The first page of ListLoans (25 loans) of a random borrower that owns loans."""
    stub = loans_grpc.LoanServiceStub(channel)
    owners = borrowers.owners()
    request = loans_pb.ListLoansRequest(page_size=LIST_PAGE_SIZE)

    def call() -> None:
        metadata, _ = random.choice(owners)
        response = stub.ListLoans(request, metadata=metadata, timeout=_TIMEOUT)
        if not response.HasField("page") or not response.page.loans:
            raise RuntimeError(f"ListLoans failed: {response.error}")

    return call


def log_in_borrowers(auth_target: str, users: int) -> Borrowers:
    """Register and log in `users` borrowers, each in an organization of its own.

    Through the Python client, which raises any refusal; the measured calls
    below use bare stubs, so that the client's own work is not in the figures.
    """
    with grpc.insecure_channel(auth_target) as channel:
        auth = AuthServiceClient(channel)
        tokens = []
        password = secrets.token_urlsafe(16)
        for i in range(users):
            email = f"bench-{i}-{uuid.uuid4().hex[:8]}@example.com"
            auth.register(
                auth_pb.RegisterRequest(
                    email=email,
                    password=password,
                    name=f"Bench {i}",
                    role=auth_pb.USER_ROLE_BORROWER,
                    organization_name=f"Bench Borrower {i}",
                )
            )
            tokens.append(Session(auth).login(email, password).access_token)
    return Borrowers(tokens)


def percentile_ms(latencies: list[float], percentile: int) -> float | None:
    """The percentile of latencies in seconds, in milliseconds; None below two samples."""
    if len(latencies) < 2:
        return None
    return round(statistics.quantiles(latencies, n=100)[percentile - 1] * 1000, 2)
