"""`loansuite bench`: CreateLoan (all seven steps) against Health/Check on one server stack.

The three services run as real processes on free ports with fresh databases.
A pool of borrowers logs in once and reuses its access tokens, as real clients
do; every CreateLoan carries a fresh request_id. Each phase runs the same
number of concurrent callers for the same time. After the CreateLoan phase the
benchmark waits for the outbox to drain and reads the commit-to-audit lag from
the audit log itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc
from loansuite.loans.v1 import loan_service_pb2 as loans_pb
from loansuite.loans.v1 import loan_service_pb2_grpc as loans_grpc
from sqlalchemy import create_engine, text

from services.shared.settings import Settings

__all__ = ["run_bench"]

PG_ADMIN_DSN = os.environ.get("LOANSUITE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def run_bench(
    *,
    json_output: bool,
    seconds: float,
    concurrency: int,
    users: int,
    server_model: str | None,
    database: str,
) -> int:
    """Run both phases and print the figures; returns the exit code."""
    model = server_model or Settings().server_model
    with _suite(model, database) as suite:
        channel = grpc.insecure_channel(f"127.0.0.1:{suite.ports['loans']}")
        tokens = _borrower_tokens(suite.ports["auth"], users)
        health = _health_call(channel)
        create = _create_call(channel, tokens)
        _phase(health, concurrency, 1.0)  # warm-up: connections, caches, lazy imports
        _phase(create, concurrency, 1.0)
        health_rps, health_lat, health_cpu = _measured(suite, health, concurrency, seconds)
        started = time.time()
        create_rps, create_lat, create_cpu = _measured(suite, create, concurrency, seconds)
        audit = _audit_figures(suite.audit_url, started, created=len(create_lat))
        channel.close()
    result = {
        "server_model": model,
        "database": database,
        "concurrency": concurrency,
        "seconds": seconds,
        "health_rps": round(health_rps, 1),
        "health_p50_ms": _ms(health_lat, 50),
        "health_p99_ms": _ms(health_lat, 99),
        "create_loan_rps": round(create_rps, 1),
        "ratio": round(create_rps / health_rps, 3),
        "create_loan_p50_ms": _ms(create_lat, 50),
        "create_loan_p99_ms": _ms(create_lat, 99),
        **audit,
        "health_cpu_ms_per_call": health_cpu,
        "create_loan_cpu_ms_per_call": create_cpu,
    }
    print(json.dumps(result) if json_output else _table(result))
    return 0


def _measured(
    suite: _Running, call: Callable[[], None], concurrency: int, seconds: float
) -> tuple[float, list[float], dict[str, float]]:
    """A phase, plus the CPU time each process spent per call during it (Linux /proc)."""
    before = suite.cpu_seconds()
    rps, latencies = _phase(call, concurrency, seconds)
    after = suite.cpu_seconds()
    per_call = {
        name: round((after[name] - before[name]) * 1000 / max(len(latencies), 1), 3)
        for name in after
    }
    return rps, latencies, per_call


def _phase(call: Callable[[], None], concurrency: int, seconds: float) -> tuple[float, list[float]]:
    """Run call from `concurrency` threads for `seconds`; calls/s and latencies in seconds."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    deadline = time.perf_counter() + seconds

    def worker(mine: list[float]) -> None:
        while (start := time.perf_counter()) < deadline:
            call()
            mine.append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker, args=(lat,)) for lat in latencies]
    begun = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = [x for lat in latencies for x in lat]
    return len(merged) / (time.perf_counter() - begun), merged


def _health_call(channel: grpc.Channel) -> Callable[[], None]:
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest()

    def call() -> None:
        if stub.Check(request, timeout=10).status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError("loans is not serving")

    return call


def _create_call(channel: grpc.Channel, tokens: list[str]) -> Callable[[], None]:
    stub = loans_grpc.LoanServiceStub(channel)
    counter = iter(range(10**12))
    lock = threading.Lock()

    def call() -> None:
        with lock:
            n = next(counter)
        request = loans_pb.CreateLoanRequest(
            name=f"Bench loan {n}",
            loan_type=loans_pb.LOAN_TYPE_FIXED_RATE,
            currency_code="EUR",
            principal_amount="1250000.00",
            committed_amount="1000000.00",
            drawn_amount="0.00",
            start_date="2027-01-01",
            maturity_date="2032-01-01",
            request_id=uuid.uuid4().hex,
        )
        metadata = (("authorization", f"Bearer {tokens[n % len(tokens)]}"),)
        response = stub.CreateLoan(request, metadata=metadata, timeout=10)
        if not response.HasField("loan"):
            raise RuntimeError(f"CreateLoan failed: {response.error}")

    return call


def _borrower_tokens(auth_port: int, users: int) -> list[str]:
    with grpc.insecure_channel(f"127.0.0.1:{auth_port}") as channel:
        stub = auth_grpc.AuthServiceStub(channel)
        tokens = []
        password = secrets.token_urlsafe(16)
        for i in range(users):
            email = f"bench-{i}-{uuid.uuid4().hex[:8]}@example.com"
            stub.Register(
                auth_pb.RegisterRequest(
                    email=email,
                    password=password,
                    name=f"Bench {i}",
                    role=auth_pb.USER_ROLE_BORROWER,
                    organization_name=f"Bench Borrower {i}",
                )
            )
            login = stub.Login(auth_pb.LoginRequest(email=email, password=password))
            if not login.HasField("session"):
                raise RuntimeError(f"login failed: {login.error}")
            tokens.append(login.session.access_token)
    return tokens


def _audit_figures(
    audit_url: str, since: float, created: int, timeout: float = 60.0
) -> dict[str, Any]:
    """Wait for the phase's LOAN_CREATED events to reach audit; lag = ingest - occur time."""
    engine = create_engine(audit_url)
    query = text("SELECT occur_time, ingest_time FROM audit_events WHERE action = 'LOAN_CREATED'")
    deadline = time.monotonic() + timeout
    phase: list[tuple[float, float]] = []
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            rows = list(conn.execute(query))
        phase = [(_seconds(o), _seconds(i)) for o, i in rows if _seconds(o) >= since]
        if len(phase) >= created:
            break
        time.sleep(0.2)
    engine.dispose()
    lags = sorted(ingest - occur for occur, ingest in phase)
    ingested = [ingest for _, ingest in phase]
    spread = max(ingested) - min(ingested) if ingested else 0.0
    return {
        "audit_events": len(phase),
        "audit_missing": created - len(phase),
        "audit_ingest_eps": round(len(phase) / spread, 1) if spread else None,
        "audit_lag_p50_ms": _ms(lags, 50),
        "audit_lag_p99_ms": _ms(lags, 99),
        "audit_lag_max_ms": round(lags[-1] * 1000, 1) if lags else None,
    }


def _seconds(value: Any) -> float:
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return float(value.timestamp())


@dataclass
class _Running:
    ports: dict[str, int]
    audit_url: str
    pids: dict[str, int]

    def cpu_seconds(self) -> dict[str, float]:
        """User + system CPU seconds of each service process and of this client."""
        ticks = os.sysconf("SC_CLK_TCK")
        used = {}
        for name, pid in self.pids.items():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[name] = (int(fields[11]) + int(fields[12])) / ticks
        mine = os.times()
        used["client"] = mine.user + mine.system
        return used


@contextlib.contextmanager
def _suite(model: str, database: str) -> Iterator[_Running]:
    """The three services as processes on free ports, over fresh databases."""
    with (
        tempfile.TemporaryDirectory(prefix="loansuite-bench-") as tmp,
        _databases(database, Path(tmp)) as urls,
    ):
        ports = {name: _free_port() for name in ("auth", "audit", "loans")}
        env = {
            **os.environ,
            "LOANSUITE_DATA_DIR": tmp,
            "LOANSUITE_SERVER_MODEL": model,
            **{f"LOANSUITE_{n.upper()}_PORT": str(p) for n, p in ports.items()},
            **{f"LOANSUITE_{n.upper()}_DATABASE_URL": u for n, u in urls.items()},
        }
        processes: dict[str, subprocess.Popen[bytes]] = {}
        try:
            for name in ("auth", "audit", "loans"):
                with (Path(tmp) / f"{name}.log").open("wb") as log:  # the child keeps its own
                    processes[name] = subprocess.Popen(
                        [sys.executable, "-m", "services.cli", "serve", name],
                        env=env,
                        stdout=log,
                        stderr=log,
                    )
                _wait_serving(ports[name])
            yield _Running(ports, urls["audit"], {n: p.pid for n, p in processes.items()})
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                process.wait(30)


@contextlib.contextmanager
def _databases(database: str, tmp: Path) -> Iterator[dict[str, str]]:
    names = ("auth", "audit", "loans")
    if database == "sqlite":
        yield {n: f"sqlite:///{tmp / f'{n}.db'}" for n in names}
        return
    suffix = uuid.uuid4().hex[:8]
    created = {n: f"loansuite_bench_{n}_{suffix}" for n in names}
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        for db in created.values():
            conn.execute(f'CREATE DATABASE "{db}"')
    try:
        yield {n: f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}" for n, db in created.items()}
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            for db in created.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def _wait_serving(port: int, timeout: float = 60.0) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.RpcError):
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            time.sleep(0.1)
    raise RuntimeError(f"no service came up on port {port}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ms(latencies: list[float], percentile: int) -> float | None:
    if len(latencies) < 2:
        return None
    return round(statistics.quantiles(latencies, n=100)[percentile - 1] * 1000, 2)


def _table(result: dict[str, Any]) -> str:
    return "\n".join(f"{key:>22}  {value}" for key, value in result.items())
