"""The README's grpcurl walk-through works as written, against real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.support import Processes

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def walkthrough(ports: dict[str, int]) -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- walkthrough:start -->\n```bash\n(.*?)```\n<!-- walkthrough:end -->",
        readme,
        re.DOTALL,
    )
    assert block, "the README has no walk-through block"
    script = block.group(1)
    for service, default in (("auth", 50051), ("loans", 50052), ("audit", 50053)):
        script = script.replace(f"localhost:{default}", f"127.0.0.1:{ports[service]}")
    return script


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_readme_walkthrough_runs_as_written(processes: Processes) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walkthrough(processes.ports)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "loansuite.loans.v1.LoanService" in out
    assert '"reason": "MATURITY_NOT_AFTER_START"' in out
    assert '"field": "maturity_date"' in out
    # The loan goes from draft to active, in order, and its KPI is accepted first.
    states = re.findall(r'"state": "LOAN_STATE_(\w+)"', out)
    assert states[:5] == ["DRAFT", "DRAFT", "PENDING_APPROVAL", "APPROVED", "ACTIVE"]
    assert '"status": "KPI_STATUS_ACCEPTED"' in out
    # The verified result passes and steps the margin down by the ratchet's 5 bps, once.
    assert '"status": "KPI_RESULT_STATUS_VERIFIED"' in out
    assert out.count('"applied_bps": -5') == 2  # in the verification and in the listing
    assert out.count('"cumulative_bps": -5') == 2
    # The drawdown is funded: in the approval's ledger entry, and in the ledger with its balances.
    assert out.count('"outstanding_amount": "250000.00"') >= 2
    # One margin a quarter to maturity: 180 bps until the step-down is in force, then 175.
    margins = [int(m) for m in re.findall(r"^\S+ \S+ (\d+)$", out, re.MULTILINE)]
    assert len(margins) == 20
    assert (margins[0], margins[-1]) == (180, 175)
    assert margins == sorted(margins, reverse=True)
    # The audit log holds one event per change, in order, the first with the request id given.
    assert '"action": "LOAN_CREATED"' in out
    assert '"request_id": "walkthrough-1"' in out
    summary = audit_summary(out)
    # auth and loans relay independently: only each service's own events keep their order.
    assert sorted(e for e in summary if e[1] == "user") == [
        ("USER_LOGGED_IN", "user"),
        ("USER_REGISTERED", "user"),
    ]
    assert [e for e in summary if e[1] != "user"] == [
        ("LOAN_CREATED", "loan"),
        ("LENDER_INVITED", "loan"),
        ("KPI_CREATED", "kpi"),
        ("MARGIN_RATCHET_CREATED", "margin_ratchet"),
        ("KPI_ACCEPTED", "kpi"),
        ("LOAN_SUBMITTED", "loan"),
        ("LOAN_APPROVED", "loan"),
        ("LOAN_ACTIVATED", "loan"),
        ("KPI_RESULT_REPORTED", "kpi_result"),
        ("KPI_RESULT_VERIFIED", "kpi_result"),
        ("MARGIN_ADJUSTED", "margin_adjustment"),
        ("DRAWDOWN_REQUESTED", "drawdown"),
        ("DRAWDOWN_APPROVED", "drawdown"),
    ]


def audit_summary(out: str) -> list[tuple[str, str]]:
    """The (action, resource type) lines that the walk-through's last command prints."""
    return re.findall(r"^([A-Z_]+) ([a-z_]+) \S+$", out, re.MULTILINE)
