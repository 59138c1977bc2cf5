"""`loansuite demo` tells its story against the suite as processes, and fails loudly without it."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.e2e.support import Processes
from tests.support import LOANSUITE, free_port

pytestmark = pytest.mark.e2e


def answers(output: str) -> dict[str, dict[str, object]]:
    """Each numbered step's title and the JSON answer printed under it."""
    parts = re.split(r"^\d+\. (.+)$", output, flags=re.MULTILINE)[1:]
    return {title: json.loads(body) for title, body in zip(parts[::2], parts[1::2], strict=True)}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_demo_tells_the_story_from_registration_to_the_audit_trail(
    processes: Processes,
) -> None:
    ports = processes.ports
    run = subprocess.run(
        [LOANSUITE, "demo"] + [f"--{s}=127.0.0.1:{ports[s]}" for s in ("auth", "loans", "audit")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    steps = answers(run.stdout)
    assert len(steps) == 14
    verified = steps["Lena verifies it: the target is met, the margin steps down"]
    assert verified["adjustment"]["appliedBps"] == -5  # type: ignore[index]
    trail = steps["The loan's audit trail"]["events"]
    actions = [event["action"] for event in trail]  # type: ignore[attr-defined]
    assert actions[0] == "LOAN_CREATED"
    assert "LOAN_ACTIVATED" in actions
    # Run again against the same suite: new users, a new loan.
    again = subprocess.run(
        [LOANSUITE, "demo"] + [f"--{s}=127.0.0.1:{ports[s]}" for s in ("auth", "loans", "audit")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr


def test_the_demo_says_in_one_line_when_nothing_answers() -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    run = subprocess.run(
        [LOANSUITE, "demo", f"--auth={nowhere}", f"--loans={nowhere}", f"--audit={nowhere}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.startswith("loansuite: the demo stopped:")
    assert "Traceback" not in run.stderr
