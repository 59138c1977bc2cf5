"""The README's grpcurl walk-through works as written, against real processes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Processes

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
    assert '"state": "LOAN_STATE_DRAFT"' in out
    assert '"reason": "MATURITY_NOT_AFTER_START"' in out
    assert '"field": "maturity_date"' in out
    assert '"action": "LOAN_CREATED"' in out
    assert '"request_id": "walkthrough-1"' in out
