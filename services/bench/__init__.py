"""`loansuite bench`: CreateLoan (all seven steps), GetLoan, ListLoans and audit ingest.

Everything is measured against Health/Check on the same server stack. The
three services run as real processes on free ports with fresh databases
(suite.py). A pool of borrowers logs in once; every phase runs the same
number of concurrent callers for the same time (phases.py), in this order:

1. Health/Check against the loans server, the floor of the stack;
2. CreateLoan with a fresh request_id; afterwards the benchmark waits for the
   outbox to drain and reads the commit-to-audit lag from the audit log;
3. GetLoan of a loan the calling borrower created, then the first page of
   ListLoans (25 loans);
4. ingest only: the audit service fed directly over one IngestEvents stream
   (audit.py).

With --soak the phases give way to a steady CreateLoan load for a long time,
with its figures taken at every interval (soak.py).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import grpc

from services.bench import phases
from services.bench.audit import audit_figures, ingest_only
from services.bench.phases import Borrowers, Call, Measured, percentile_ms
from services.bench.soak import SoakPlan, run_soak
from services.bench.suite import Suite, running_suite
from services.shared.settings import Settings

__all__ = ["run_bench"]

# Connections, caches and lazy imports settle before anything is measured.
WARM_UP_SECONDS = 1.0
SOAK_INTERVAL = 30.0


def run_bench(
    *,
    json_output: bool,
    seconds: float,
    concurrency: int,
    users: int,
    server_model: str | None,
    database: str,
    workers: int = 1,
    soak: float | None = None,
    rate: float | None = None,
    interval: float | None = None,
) -> int:
    """Run every phase, or the soak, and print the figures; returns the exit code."""
    if refusal := _refusal(database, workers) or _soak_refusal(soak, rate, interval):
        print(f"loansuite: {refusal}", file=sys.stderr)
        return 2
    settings = Settings()  # the services read the same environment
    model = server_model or settings.server_model
    with running_suite(model, database, workers) as suite:
        if soak is None:
            figures = {"seconds": seconds, **_measure(_Phases(suite, seconds, concurrency), users)}
        else:
            plan = SoakPlan(
                soak, interval or SOAK_INTERVAL, rate, concurrency, users, WARM_UP_SECONDS
            )
            figures = {"users": users, "retention": _retention(settings), **run_soak(suite, plan)}
    result = {
        "server_model": model,
        "database": database,
        "workers": workers,
        "concurrency": concurrency,
        **figures,
    }
    print(json.dumps(result) if json_output else _table(result))
    return 0


def _refusal(database: str, workers: int) -> str | None:
    if workers < 1:
        return "bench: --workers must be at least 1"
    if workers > 1 and database == "sqlite":
        # `serve loans --workers N` refuses SQLite too: change notifications would
        # reach only the WatchLoans subscribers of the process that wrote.
        return (
            "bench: --workers above 1 needs --database postgresql "
            "(on SQLite loans runs as one process)"
        )
    return None


def _soak_refusal(soak: float | None, rate: float | None, interval: float | None) -> str | None:
    if soak is None and (rate is not None or interval is not None):
        return "bench: --rate and --interval need --soak"
    for flag, value in (("--soak", soak), ("--rate", rate), ("--interval", interval)):
        if value is not None and value <= 0:
            return f"bench: {flag} must be above 0"
    return None


def _retention(settings: Settings) -> dict[str, float]:
    """The retention the services run with (they read the same LOANSUITE_* variables)."""
    return {
        "outbox_seconds": settings.outbox_retention_seconds,
        "idempotency_seconds": settings.idempotency_retention_seconds,
        "sweep_seconds": settings.retention_sweep_seconds,
    }


@dataclass(frozen=True)
class _Phases:
    """How every phase runs: against which suite, for how long, with how many callers."""

    suite: Suite
    seconds: float
    concurrency: int

    def warm(self, *calls: Call) -> None:
        for call in calls:
            phases.run_phase(call, self.concurrency, WARM_UP_SECONDS)

    def measure(self, call: Call) -> Measured:
        return phases.measure(self.suite.cpu_seconds, call, self.concurrency, self.seconds)


def _measure(run: _Phases, users: int) -> dict[str, Any]:
    """Every phase in order; the figures in the order they are printed."""
    borrowers = phases.log_in_borrowers(run.suite.target("auth"), users)
    with run.suite.loans_channel(run.concurrency) as channel:
        health_call = phases.health_call(channel)
        create_call = phases.create_loan_call(channel, borrowers)
        run.warm(health_call, create_call)
        health = run.measure(health_call)
        started = time.time()
        create = run.measure(create_call)
        audit = audit_figures(run.suite.audit_url, started, created=len(create.latencies))
        reads = _reads(run, channel, borrowers)
    ingest = ingest_only(run.suite, run.seconds, WARM_UP_SECONDS)
    return {
        **_figures("health", health),
        **_figures("create_loan", create, floor=health, ratio_key="ratio"),
        **{key: v for name, m in reads.items() for key, v in _figures(name, m, health).items()},
        **audit,
        **ingest,
        "health_cpu_ms_per_call": health.cpu_ms_per_call,
        "create_loan_cpu_ms_per_call": create.cpu_ms_per_call,
        **{f"{name}_cpu_ms_per_call": m.cpu_ms_per_call for name, m in reads.items()},
    }


def _reads(run: _Phases, channel: grpc.Channel, borrowers: Borrowers) -> dict[str, Measured]:
    """GetLoan, then ListLoans, over the loans the CreateLoan phases made."""
    measured = {}
    for name, make in (("get_loan", phases.get_loan_call), ("list_loans", phases.list_loans_call)):
        call = make(channel, borrowers)
        run.warm(call)
        measured[name] = run.measure(call)
    return measured


def _figures(
    name: str, measured: Measured, floor: Measured | None = None, ratio_key: str = ""
) -> dict[str, Any]:
    """rps, its ratio to the floor's (when given), p50 and p99 latency of one phase."""
    figures: dict[str, Any] = {f"{name}_rps": round(measured.rps, 1)}
    if floor is not None:
        figures[ratio_key or f"{name}_ratio"] = round(measured.rps / floor.rps, 3)
    figures[f"{name}_p50_ms"] = percentile_ms(measured.latencies, 50)
    figures[f"{name}_p99_ms"] = percentile_ms(measured.latencies, 99)
    return figures


def _table(result: dict[str, Any]) -> str:
    """One line per figure; a list (the soak's intervals) one line per item."""
    width = max(len(key) for key in result)
    lines = []
    for key, value in result.items():
        shown = [json.dumps(item) for item in value] if isinstance(value, list) else [value]
        lines += [f"{key:>{width}}  {item}" for item in shown]
    return "\n".join(lines)
