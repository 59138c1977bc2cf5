"""`loansuite bench --json` runs end to end and reports every figure it promises."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support import LOANSUITE

pytestmark = pytest.mark.e2e


def test_bench_prints_one_json_object_with_the_figures() -> None:
    result = subprocess.run(
        [LOANSUITE, "bench", "--json", "--seconds", "0.5", "--users", "2", "--concurrency", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
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
