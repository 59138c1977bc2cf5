"""Faults, measured: SIGKILL audit or loans mid-write; two loan replicas on one database.

Each scenario drains the outbox, then compares three sets: loans the clients saw
created, loans committed in the loans database, LOAN_CREATED events in the audit
database. It prints its figures (run pytest with -s to see them), attaches them
with record_property, and asserts that each committed loan is audited exactly
once and nothing else is.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

import pytest
from grpc_health.v1 import health_pb2

from tests.e2e.ledger import (
    DEADLINE,
    POLL,
    LoanClients,
    count_messages,
    drain,
    figures,
    last_relay_report,
    outbox_pending,
    outbox_rows,
)
from tests.e2e.support import Processes, borrower_token
from tests.support import eventually, outbox_health

pytestmark = pytest.mark.e2e
Record = Callable[[str, object], None]
STANDING_BY = "another relay delivers this SQLite database's outbox; standing by"


def test_audit_killed_while_loans_are_written(
    processes: Processes, backend: str, record_property: Record
) -> None:
    clients = LoanClients(borrower_token(processes), [processes.ports["loans"]])
    try:
        clients.wait_for(30)
        processes.stop("audit", signal.SIGKILL)
        at_risk = outbox_pending(processes)
        clients.wait_for(60)  # loans keep committing while audit is away
        processes.start("audit")
        clients.wait_for(30)
    finally:
        clients.stop()
    drain(processes)
    relay = final_relay_report(processes, "loans", delivered=outbox_rows(processes))

    measured = figures(
        [clients],
        processes,
        at_risk_of_redelivery=at_risk,
        relay_failed_attempts=relay["failed_attempts_total"],
        relay_resent=relay["resent_total"],
        audit_recovered_lines=count_messages(processes, "loans", "audit delivery recovered"),
    )
    report("audit SIGKILLed during writes", backend, measured, record_property)
    assert_each_committed_loan_audited_once(measured)
    assert measured["client_unknown"] == 0  # creating a loan never waits for audit
    assert measured["audit_recovered_lines"] >= 1


def test_loans_killed_in_a_burst_of_creates(
    processes: Processes, backend: str, record_property: Record
) -> None:
    token = borrower_token(processes)
    burst = LoanClients(token, [processes.ports["loans"]], threads=8)
    try:
        burst.wait_for(40)
        processes.stop("loans", signal.SIGKILL)  # calls are in flight: threads never pause
    finally:
        burst.stop()
    at_risk = outbox_pending(processes)
    processes.start("loans")
    after = LoanClients(token, [processes.ports["loans"]])
    try:
        after.wait_for(20)
    finally:
        after.stop()
    drain(processes)

    measured = figures([burst, after], processes, at_risk_of_redelivery=at_risk)
    report("loans SIGKILLed mid-burst", backend, measured, record_property)
    assert_each_committed_loan_audited_once(measured)
    assert burst.unknown > 0  # the kill did land in the middle of calls


def test_two_loan_replicas_on_one_database(
    processes: Processes, backend: str, record_property: Record
) -> None:
    processes.start("loans", instance="loans-2")
    ports = [processes.ports["loans"], processes.ports["loans-2"]]
    clients = LoanClients(borrower_token(processes), ports, threads=8)
    try:
        clients.wait_for(150)
    finally:
        clients.stop()
    drain(processes)
    rows = outbox_rows(processes)

    if backend == "postgresql":
        delivered = final_delivered_by_replicas(processes, rows)
    else:  # one relay per SQLite file: the replica started second stands by
        delivered = [final_relay_report(processes, "loans", rows)["delivered_total"], 0]
    health = [outbox_health(port, "loans") for port in ports]
    measured = figures(
        [clients],
        processes,
        delivered_by_replica=delivered,
        outbox_rows=rows,
        outbox_health=[health_pb2.HealthCheckResponse.ServingStatus.Name(h) for h in health],
        ingest_conflict_lines=count_messages(
            processes, "audit", "ingest conflict; retrying the batch"
        ),
    )
    report("two loan replicas, one database", backend, measured, record_property)
    assert_each_committed_loan_audited_once(measured)
    assert sum(delivered) == rows  # no event was delivered by both replicas
    if backend == "sqlite":
        assert measured["outbox_health"] == ["SERVING", "UNKNOWN"]
        assert count_messages(processes, "loans-2", STANDING_BY) == 1
        assert last_relay_report(processes, "loans-2").get("delivered_total", 0) == 0
    else:
        assert measured["outbox_health"] == ["SERVING", "SERVING"]


def assert_each_committed_loan_audited_once(measured: dict[str, Any]) -> None:
    assert measured["acknowledged_but_lost"] == 0
    assert measured["committed_not_audited"] == 0
    assert measured["audited_not_committed"] == 0
    assert measured["duplicates_stored"] == 0
    assert measured["client_refused"] == 0
    # A committed loan no client saw must be one of the calls that ended in an error.
    assert measured["unknown_that_committed"] <= measured["client_unknown"]


def final_relay_report(processes: Processes, name: str, delivered: int) -> dict[str, Any]:
    """The relay's report once it shows every outbox row delivered (reports come every 5 s)."""
    eventually(
        lambda: last_relay_report(processes, name).get("delivered_total") == delivered,
        f"{name}'s relay reported {delivered} delivered",
        timeout=DEADLINE,
        interval=POLL,
    )
    return last_relay_report(processes, name)


def final_delivered_by_replicas(processes: Processes, rows: int) -> list[int]:
    """Each replica's delivered total once their sum covers every row.

    Totals only grow and nothing is pending, so the first moment the sum reaches the
    row count is final: a larger sum would mean an event delivered twice.
    """

    def totals() -> list[int]:
        names = ("loans", "loans-2")
        return [last_relay_report(processes, n).get("delivered_total", 0) for n in names]

    eventually(
        lambda: sum(totals()) >= rows,
        "the replicas reported every row delivered",
        timeout=DEADLINE,
        interval=POLL,
    )
    return totals()


def report(scenario: str, backend: str, measured: dict[str, Any], record: Record) -> None:
    print(f"\n[faults] {scenario} ({backend}): {json.dumps(measured)}")
    record(f"{scenario} ({backend})", json.dumps(measured))
