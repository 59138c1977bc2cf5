"""`loansuite bench --soak`: a steady CreateLoan load for a long time, looked at every interval.

The load is open-loop: CreateLoan calls start on a fixed schedule, ``rate`` a
second, through gRPC futures, whatever the server does; a slow server shows as
latency and as fewer completed calls, never as a lower offered rate. Latency
runs from each call's scheduled start, so a client that fell behind cannot hide
the wait (coordinated omission). Beside it runs a trickle: GetLoan and
ListLoans (1 % of the rate), one WatchLoans stream held for each interval, and a
Register + Login every few seconds. At each interval's end come its CreateLoan
rps and p99, its errors, each service's resident memory, and the row count of
every table that the retention sweep keeps bounded.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from loansuite.loans.v1 import loan_service_pb2 as pb
from loansuite.loans.v1 import loan_service_pb2_grpc as loans_grpc

from services.bench import phases
from services.bench.phases import Borrowers, percentile_ms
from services.bench.suite import Suite
from services.bench.tables import ROW_TABLES, read_only, row_counts
from services.shared._types import Metadata

__all__ = ["CALIBRATION_SECONDS", "REGISTER_SECONDS", "SoakPlan", "run_soak"]

CALIBRATION_SECONDS = 5.0  # the closed-loop CreateLoan run whose half is the default rate
REGISTER_SECONDS = 5.0  # a Register + Login costs two Argon2 hashes
READ_SHARE = 0.01  # reads offered per CreateLoan offered, but at least one a second
_TIMEOUT = 10.0
_COUNTED = ("errors", "reads", "watch_changes", "registrations")  # per interval


@dataclass(frozen=True)
class SoakPlan:
    """How long, at what rate (None: half the calibration run), how often to look, as whom."""

    seconds: float
    interval: float
    rate: float | None
    concurrency: int  # of the warm-up and the calibration run
    users: int
    warm_up: float


def run_soak(suite: Suite, plan: SoakPlan) -> dict[str, Any]:
    """Warm up, calibrate unless given a rate, run the load; its settings and intervals."""
    borrowers = phases.log_in_borrowers(suite.target("auth"), plan.users)
    engines = {
        service: read_only(suite.database_urls[service]) for service, _ in ROW_TABLES.values()
    }
    try:
        with suite.loans_channel(plan.concurrency) as channel:
            create = phases.create_loan_call(channel, borrowers)
            phases.run_phase(create, plan.concurrency, plan.warm_up)  # the reads need loans too
            calibration = None
            if plan.rate is None:
                calibration = phases.run_phase(create, plan.concurrency, CALIBRATION_SECONDS)[0]
            rate = plan.rate or (calibration or 0.0) / 2
            load = _Load(channel, suite.target("auth"), _Pool(borrowers), rate)
            look = lambda: {"rss_mb": suite.rss_mb(), "rows": row_counts(engines)}  # noqa: E731
            intervals = load.run(plan, look)
    finally:
        for engine in engines.values():
            engine.dispose()
    return {
        "soak_seconds": plan.seconds,
        "soak_interval": plan.interval,
        "soak_rate": round(rate, 1),
        "soak_calibration_rps": None if calibration is None else round(calibration, 1),
        "soak_errors": load.tally.errors,
        "soak_last_error": load.tally.last_error,
        "soak": intervals,
    }


@dataclass(frozen=True)
class _Borrower:
    metadata: Metadata
    loans: list[str]  # appended from gRPC's call-back thread; list.append is atomic


class _Pool:
    """The borrowers the load runs as; each new registration takes the oldest one's place.

    So no access token outlives its lifetime in a long soak, nor any list of loans grows long.
    """

    def __init__(self, borrowers: Borrowers) -> None:
        pairs = zip(borrowers.metadata, borrowers.loans, strict=True)
        self._slots = [_Borrower(metadata, loans) for metadata, loans in pairs]
        self._oldest = 0

    def slot(self, n: int) -> _Borrower:
        return self._slots[n % len(self._slots)]

    def owner(self) -> _Borrower | None:
        """A random borrower that owns a loan, if any does."""
        owners = [borrower for borrower in self._slots if borrower.loans]
        return random.choice(owners) if owners else None

    def newest(self) -> _Borrower:
        """The borrower that stays in the pool the longest from now on."""
        return self._slots[self._oldest - 1]

    def replace_oldest(self, metadata: Metadata) -> None:
        self._slots[self._oldest] = _Borrower(metadata, [])
        self._oldest = (self._oldest + 1) % len(self._slots)


class _Tally:
    """What happened in the current interval; the sampler takes it and starts afresh."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latencies: list[float] = []
        self._counts: Counter[str] = Counter()
        self.in_flight = 0  # calls whose outcome has not arrived
        self.errors = 0  # over the whole run, the last calls' included
        self.last_error: str | None = None

    def count(self, kind: str, latency: float | None = None, in_flight: int = 0) -> None:
        with self._lock:
            self._counts[kind] += 1
            self.in_flight += in_flight
            if latency is not None:
                self._latencies.append(latency)

    def failed(self, what: str, error: object, in_flight: int = 0) -> None:
        if isinstance(error, grpc.Call):  # a failed call: one line, not its whole repr
            error = f"{error.code().name}: {error.details()}"
        with self._lock:
            self.errors += 1
            self.last_error = f"{what}: {error}"
        self.count("errors", in_flight=in_flight)

    def take(self) -> tuple[list[float], Counter[str]]:
        with self._lock:
            taken = self._latencies, self._counts
            self._latencies, self._counts = [], Counter()
        return taken


class _Load:
    """The open-loop CreateLoan load and the trickle beside it, sampled every interval."""

    def __init__(self, loans: grpc.Channel, auth_target: str, pool: _Pool, rate: float) -> None:
        self._loans = loans_grpc.LoanServiceStub(loans)
        self._auth_target = auth_target
        self._pool = pool
        self._rate = rate
        self._numbers: Iterator[int] = itertools.count()
        self._stop = threading.Event()
        self._watch: grpc.CallIterator[pb.WatchLoansResponse] | None = None
        self.tally = _Tally()

    def run(self, plan: SoakPlan, sample: Callable[[], dict[str, Any]]) -> list[dict[str, Any]]:
        start = time.perf_counter()
        schedules = (
            (self._rate, self._create),
            (max(self._rate * READ_SHARE, 1.0), self._read),
            (1 / REGISTER_SECONDS, self._register),
        )
        threads = [
            threading.Thread(target=self._open_loop, args=(*s, start, plan)) for s in schedules
        ]
        threads.append(threading.Thread(target=self._watch_loans))
        for thread in threads:
            thread.start()
        try:
            return [self._interval(start, ends, sample) for ends in _intervals(start, plan)]
        finally:
            self._stop.set()
            self._renew_watch()
            for thread in threads:
                thread.join()
            deadline = time.monotonic() + _TIMEOUT  # as long as any call's own deadline
            while self.tally.in_flight and time.monotonic() < deadline:
                time.sleep(0.01)

    def _interval(
        self, start: float, ends: tuple[float, float], sample: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        """Wait for the interval's end, then its figures; the watch stream starts anew."""
        began, ended = ends
        time.sleep(max(0.0, ended - time.perf_counter()))
        latencies, counts = self.tally.take()
        self._renew_watch()
        seconds = ended - began
        return {
            "t": round(ended - start, 1),
            "offered_rps": round(counts["offered"] / seconds, 1),
            "create_loan_rps": round(counts["create_loan"] / seconds, 1),
            "create_loan_p50_ms": percentile_ms(latencies, 50),
            "create_loan_p99_ms": percentile_ms(latencies, 99),
            **{kind: counts[kind] for kind in _COUNTED},
            **sample(),
        }

    def _open_loop(
        self, rate: float, send: Callable[[float], None], start: float, plan: SoakPlan
    ) -> None:
        """send(due) for due = start, start + 1/rate, ... to the soak's end, come what may.

        Behind schedule, what is due goes at once; its latency, counted from due, shows it.
        """
        for n in itertools.count():
            due = start + n / rate
            if due >= start + plan.seconds or self._stop.wait(due - time.perf_counter()):
                return
            send(due)

    def _create(self, due: float) -> None:
        n = next(self._numbers)
        borrower = self._pool.slot(n)
        self.tally.count("offered")
        future = self._loans.CreateLoan.future(
            phases.create_loan_request(f"Soak loan {n}"),
            metadata=borrower.metadata,
            timeout=_TIMEOUT,
        )

        def succeeded(response: pb.CreateLoanResponse) -> None:
            borrower.loans.append(response.loan.id)
            self.tally.count("create_loan", time.perf_counter() - due, in_flight=-1)

        self._when_done(future, "create_loan", succeeded)

    def _read(self, _: float) -> None:
        """GetLoan and ListLoans in turn, as a borrower that owns loans."""
        if (borrower := self._pool.owner()) is None:
            return
        future: grpc.Future[Any]
        if next(self._numbers) % 2:
            get = pb.GetLoanRequest(loan_id=random.choice(borrower.loans))
            future = self._loans.GetLoan.future(get, metadata=borrower.metadata, timeout=_TIMEOUT)
        else:
            page = pb.ListLoansRequest(page_size=phases.LIST_PAGE_SIZE)
            future = self._loans.ListLoans.future(
                page, metadata=borrower.metadata, timeout=_TIMEOUT
            )
        self._when_done(future, "reads", lambda _: self.tally.count("reads", in_flight=-1))

    def _when_done(
        self, future: grpc.Future[Any], what: str, succeeded: Callable[[Any], None]
    ) -> None:
        """In flight until the outcome arrives: then succeeded(response), or an error counted."""
        self.tally.count("sent", in_flight=+1)

        def done(future: grpc.Future[Any]) -> None:
            try:
                response = future.result()
                if response.WhichOneof("result") == "error":
                    raise RuntimeError(f"{response.error.reason}: {response.error.message}")
            except Exception as exc:  # counted, and the load goes on
                self.tally.failed(what, exc, in_flight=-1)
            else:
                succeeded(response)

        future.add_done_callback(done)

    def _renew_watch(self) -> None:
        """End the current WatchLoans stream; _watch_loans opens the next one."""
        if self._watch is not None:
            self._watch.cancel()

    def _watch_loans(self) -> None:
        """One WatchLoans stream at a time, as the newest borrower, until the soak ends."""
        while not self._stop.is_set():
            metadata = self._pool.newest().metadata
            self._watch = stream = self._loans.WatchLoans(pb.WatchLoansRequest(), metadata=metadata)
            if self._stop.is_set():  # the soak ended before _renew_watch could see this stream
                stream.cancel()
            try:
                for response in stream:
                    if response.HasField("change"):
                        self.tally.count("watch_changes")
                    else:  # refused: the stream ends after its one error
                        self.tally.failed("watch_loans", response.error.reason)
            except grpc.RpcError as exc:  # the call is over, so code() does not wait
                if stream.code() == grpc.StatusCode.CANCELLED:
                    continue  # renewed at an interval's end
                self.tally.failed("watch_loans", exc)
            self._stop.wait(1.0)  # ended by the server: not in a tight loop

    def _register(self, _: float) -> None:
        """Register and log in a new borrower, in an organization of its own; it joins the pool."""
        try:
            fresh = phases.log_in_borrowers(self._auth_target, 1)
        except Exception as exc:  # counted, and the load goes on
            self.tally.failed("register", exc)
            return
        self._pool.replace_oldest(fresh.metadata[0])
        self.tally.count("registrations")


def _intervals(start: float, plan: SoakPlan) -> Iterator[tuple[float, float]]:
    """Each interval's start and end; the last one is shorter when the soak ends first."""
    bounds = [start]
    while bounds[-1] < start + plan.seconds:
        bounds.append(min(bounds[-1] + plan.interval, start + plan.seconds))
    return itertools.pairwise(bounds)
