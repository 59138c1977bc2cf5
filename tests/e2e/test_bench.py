"""`loansuite bench --json` runs end to end and reports every figure it promises."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.support import LOANSUITE

pytestmark = pytest.mark.e2e

PROCESSES = {"auth", "audit", "loans", "client"}


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOANSUITE, "bench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
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
