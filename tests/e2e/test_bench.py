"""`loansuite bench --json` runs end to end and reports every figure it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import LOANSUITE, free_port

pytestmark = pytest.mark.e2e

PROCESSES = {"auth", "audit", "loans", "client"}


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOANSUITE, "bench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def figures() -> dict[str, Any]:
    """One short run on SQLite with one loans process: every phase, briefly."""
    result = bench("--json", "--seconds", "0.5", "--users", "2", "--concurrency", "2")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_bench_prints_one_json_object_with_the_figures(figures: dict[str, Any]) -> None:
    for key in (
        "health_rps",
        "create_loan_rps",
        "ratio",
        "create_loan_p50_ms",
        "create_loan_p99_ms",
        "audit_lag_p99_ms",
        "audit_ingest_eps",
    ):
        assert isinstance(figures[key], int | float), key
    assert figures["create_loan_rps"] > 0
    assert figures["ratio"] == pytest.approx(
        figures["create_loan_rps"] / figures["health_rps"], abs=0.001
    )
    assert figures["audit_missing"] == 0
    assert figures["audit_events"] > 0
    assert figures["workers"] == 1
    assert figures["database"] == "sqlite"


@pytest.mark.parametrize("phase", ["get_loan", "list_loans"])
def test_the_read_phases_run_after_loans_exist(figures: dict[str, Any], phase: str) -> None:
    assert figures[f"{phase}_rps"] > 0
    assert figures[f"{phase}_ratio"] == pytest.approx(
        figures[f"{phase}_rps"] / figures["health_rps"], abs=0.001
    )
    assert 0 < figures[f"{phase}_p50_ms"] <= figures[f"{phase}_p99_ms"]
    cpu = figures[f"{phase}_cpu_ms_per_call"]
    assert set(cpu) == PROCESSES
    assert cpu["loans"] > 0


def test_the_ingest_only_phase_reports_events_per_second_and_cpu(
    figures: dict[str, Any],
) -> None:
    assert figures["audit_ingest_only_eps"] > 0
    assert figures["audit_cpu_ms_per_event"] > 0
    for phase in ("health", "create_loan"):
        assert set(figures[f"{phase}_cpu_ms_per_call"]) == PROCESSES


def test_several_loans_workers_on_sqlite_are_refused_before_anything_starts() -> None:
    result = bench("--json", "--workers", "2", "--database", "sqlite")

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "--workers" in result.stderr
    assert "postgresql" in result.stderr


def test_on_postgresql_with_no_server_configured_it_runs_on_an_embedded_one() -> None:
    env = {key: value for key, value in os.environ.items() if key != "LOANSUITE_BENCH_PG"}
    short = ("--seconds", "0.3", "--users", "2", "--concurrency", "2")
    result = subprocess.run(
        [LOANSUITE, "bench", "--json", "--database", "postgresql", *short],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["database"] == "postgresql"
    assert figures["create_loan_rps"] > 0
    assert figures["audit_missing"] == 0


def test_a_configured_server_that_does_not_answer_is_one_line_not_a_fallback() -> None:
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    result = bench("--json", "--database", "postgresql", env={"LOANSUITE_BENCH_PG": unreachable})

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(
        "loansuite: LOANSUITE_BENCH_PG names a PostgreSQL server that does not answer"
    )
    assert result.stderr.count("\n") == 1


def test_a_soak_reports_each_interval_and_the_retention_keeps_the_tables_bounded() -> None:
    retention = {
        "LOANSUITE_OUTBOX_RETENTION_SECONDS": "1",
        "LOANSUITE_IDEMPOTENCY_RETENTION_SECONDS": "1",
        "LOANSUITE_RETENTION_SWEEP_SECONDS": "0.5",
    }
    result = bench(
        *("--json", "--soak", "6", "--interval", "1", "--rate", "20"),
        *("--users", "2", "--concurrency", "2"),
        env=retention,
    )

    assert result.returncode == 0, result.stderr
    soak = json.loads(result.stdout)
    assert soak["soak_errors"] == 0, soak["soak_last_error"]
    assert (soak["soak_rate"], soak["soak_calibration_rps"]) == (20, None)
    assert soak["retention"] == {
        "outbox_seconds": 1,
        "idempotency_seconds": 1,
        "sweep_seconds": 0.5,
    }
    intervals = soak["soak"]
    assert [interval["t"] for interval in intervals] == [1, 2, 3, 4, 5, 6]
    for interval in intervals:
        assert interval["errors"] == 0
        assert interval["create_loan_rps"] > 0
        assert 0 < interval["create_loan_p50_ms"] <= interval["create_loan_p99_ms"]
        assert set(interval["rss_mb"]) == {"auth", "audit", "loans"}
        assert all(mb > 10 for mb in interval["rss_mb"].values())
        assert set(interval["rows"]) == {"loans.outbox", "loans.idempotency", "auth.outbox"}
    offered = sum(interval["offered_rps"] for interval in intervals)
    assert offered == pytest.approx(20 * 6, rel=0.1)
    for kind in ("reads", "watch_changes", "registrations"):
        assert sum(interval[kind] for interval in intervals) > 0, kind
    # With a second's retention, what is left at the end is a fraction of what the soak
    # alone created (the warm-up before it created more).
    created = sum(interval["create_loan_rps"] for interval in intervals)
    last = intervals[-1]["rows"]
    assert last["loans.outbox"] < created / 2
    assert last["loans.idempotency"] < created / 2


def test_the_transport_floor_script_measures_each_call_against_a_server_process() -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "transport_floor.py"
    result = subprocess.run(
        [sys.executable, str(script), "--seconds", "0.3", "--concurrency", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = {line[:30].strip(): line[30:].split() for line in result.stdout.splitlines()[1:]}
    assert set(rows) == {
        "Health/Check",
        "GetLoan, answered at once",
        "CreateLoan, answered at once",
    }
    for rps, cpu, unit in rows.values():
        assert float(rps.replace(",", "")) > 0
        assert float(cpu) > 0
        assert unit == "ms"
