"""What the fault tests compare: loans clients saw, loans committed, loans audited.

Clients run in threads against real processes; the two databases are read with
SQL afterwards. Nothing here waits a fixed time: every wait polls a condition
up to a generous deadline.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from loansuite.loans.v1 import loan_service_pb2_grpc as loans_grpc
from sqlalchemy import create_engine, text

from services.shared.columns import UTCDateTime
from tests.e2e.support import Processes, loan_request
from tests.support import bearer, eventually

DEADLINE = 60.0  # for any one wait; a healthy run needs a few seconds
POLL = 0.1  # between checks, which each open a connection to a database or a server


class LoanClients:
    """Threads creating loans back to back until stopped, remembering every outcome.

    A loan in the response is "seen"; an envelope error is "refused" (the write rolled
    back); a transport error is "unknown": the call may or may not have committed.
    """

    def __init__(self, token: str, ports: list[int], *, threads: int = 6) -> None:
        self.seen: set[str] = set()
        self.refused: Counter[str] = Counter()
        self.unknown = 0
        self._metadata = bearer(token)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._create, args=(ports[n % len(ports)],), daemon=True)
            for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def wait_for(self, more: int) -> None:
        """Wait until `more` further loans have been seen."""
        target = self.seen_count() + more
        eventually(
            lambda: self.seen_count() >= target,
            f"{more} more loans created",
            timeout=DEADLINE,
            interval=POLL,
        )

    def seen_count(self) -> int:
        with self._lock:
            return len(self.seen)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(30)

    def _create(self, port: int) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = loans_grpc.LoanServiceStub(channel)
            while not self._stopping.is_set():
                try:
                    response = stub.CreateLoan(loan_request(), metadata=self._metadata, timeout=15)
                except grpc.RpcError:
                    with self._lock:
                        self.unknown += 1
                    self._stopping.wait(0.05)  # the server is away: don't spin
                    continue
                with self._lock:
                    if response.HasField("loan"):
                        self.seen.add(response.loan.id)
                    else:
                        self.refused[response.error.reason] += 1


def _rows(url: str, statement: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(statement))
    finally:
        engine.dispose()


def committed_loans(processes: Processes) -> set[str]:
    url = processes.env["LOANSUITE_LOANS_DATABASE_URL"]
    return {row.id for row in _rows(url, text("SELECT id FROM loans"))}


def outbox_pending(processes: Processes) -> int:
    url = processes.env["LOANSUITE_LOANS_DATABASE_URL"]
    query = text("SELECT count(*) AS n FROM outbox_events WHERE delivered_time IS NULL")
    return int(_rows(url, query)[0].n)


def outbox_rows(processes: Processes) -> int:
    url = processes.env["LOANSUITE_LOANS_DATABASE_URL"]
    return int(_rows(url, text("SELECT count(*) AS n FROM outbox_events"))[0].n)


@dataclass(frozen=True)
class Audited:
    """LOAN_CREATED events in the audit database: how often each loan, and the worst lag."""

    resource_ids: Counter[str]
    max_lag_seconds: float


def audited_loans(processes: Processes) -> Audited:
    query = text(
        "SELECT resource_id, occur_time, ingest_time FROM audit_events"
        " WHERE action = 'LOAN_CREATED'"
    ).columns(occur_time=UTCDateTime(), ingest_time=UTCDateTime())
    rows = _rows(processes.env["LOANSUITE_AUDIT_DATABASE_URL"], query)
    lags = [(row.ingest_time - row.occur_time).total_seconds() for row in rows]
    return Audited(Counter(row.resource_id for row in rows), round(max(lags, default=0.0), 3))


def drain(processes: Processes) -> None:
    """Wait until every committed loan event has been acknowledged by audit."""
    eventually(
        lambda: outbox_pending(processes) == 0,
        "the loans outbox drained",
        timeout=DEADLINE,
        interval=POLL,
    )


def figures(clients: Sequence[LoanClients], processes: Processes, **extra: Any) -> dict[str, Any]:
    """The three sets compared, plus what the scenario measured itself."""
    seen = set().union(*(c.seen for c in clients))
    committed = committed_loans(processes)
    audited = audited_loans(processes)
    stored = set(audited.resource_ids)
    return {
        "client_seen": len(seen),
        "client_unknown": sum(c.unknown for c in clients),
        "client_refused": sum(sum(c.refused.values()) for c in clients),
        "committed": len(committed),
        "audited": len(stored),
        "acknowledged_but_lost": len(seen - committed),
        "committed_not_audited": len(committed - stored),
        "audited_not_committed": len(stored - committed),
        "duplicates_stored": sum(n - 1 for n in audited.resource_ids.values()),
        "unknown_that_committed": len(committed - seen),
        "max_commit_to_audit_lag_s": audited.max_lag_seconds,
        **extra,
    }


def log_lines(processes: Processes, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in processes.log(name).splitlines() if line.startswith("{")]


def last_relay_report(processes: Processes, name: str) -> dict[str, Any]:
    """The latest "outbox relay report" line of a loans process (empty when none yet)."""
    reports = [
        line
        for line in log_lines(processes, name)
        if line["message"] == "outbox relay report" and line.get("source") == "loans"
    ]
    return reports[-1] if reports else {}


def count_messages(processes: Processes, name: str, message: str) -> int:
    return sum(1 for line in log_lines(processes, name) if line["message"] == message)
