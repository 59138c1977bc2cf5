"""Operator commands that would do the wrong thing quietly say so in one line instead.

`audit verify --database-url` without a head of that deployment, and `serve` on a
taken port (before anything is opened or migrated).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from services.audit.heads import HEADS_FILE_NAME
from services.cli import main
from services.shared.db import Database
from services.shared.migrations import upgrade
from tests.support import LOANSUITE, free_port

ANOTHER_HEAD = {"sequence": 3, "hash": "a" * 64, "time": "2026-01-01T00:00:00Z"}


@pytest.fixture
def empty_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty audit database by URL; ./var holds another deployment's published head."""
    for variable in ("LOANSUITE_DATA_DIR", "LOANSUITE_AUDIT_DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / HEADS_FILE_NAME).write_text(json.dumps(ANOTHER_HEAD) + "\n")
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    db = Database(url)
    try:
        upgrade(db, "services.audit:migrations")
    finally:
        db.dispose()
    return url


def test_verify_by_url_demands_a_head_rather_than_reading_another_runs(
    empty_log: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["audit", "verify", "--database-url", empty_log])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "--expect-head" in err
    assert "--data-dir" in err


def test_verify_by_url_refuses_a_data_dir_without_published_heads(
    empty_log: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    code = main(["audit", "verify", "--database-url", empty_log, "--data-dir", "empty"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert f"no published head in {Path('empty') / HEADS_FILE_NAME}" in err


def test_verify_by_url_checks_against_the_head_given_or_the_named_heads(
    empty_log: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The empty log against ./var's head: a data directory named on purpose is believed.
    assert main(["audit", "verify", "--database-url", empty_log, "--data-dir", "var"]) == 1
    named = json.loads(capsys.readouterr().out)
    assert (named["intact"], named["problem"]) == (False, "TRUNCATED")
    head = f"1:{'b' * 64}"
    assert main(["audit", "verify", "--database-url", empty_log, "--expect-head", head]) == 1
    given = json.loads(capsys.readouterr().out)
    assert (given["problem"], given["checked_events"]) == ("TRUNCATED", 0)


def test_serve_on_a_taken_port_says_so_in_one_line_before_any_migration(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOANSUITE_")}
    with socket.create_server(("127.0.0.1", port)):
        served = subprocess.run(
            [LOANSUITE, "serve", "loans", "--port", str(port), "--data-dir", str(tmp_path / "var")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert (served.returncode, served.stdout) == (2, "")
    assert served.stderr.count("\n") == 1
    assert f"cannot listen on 127.0.0.1:{port} (loans)" in served.stderr
    assert "nothing was started" in served.stderr
    assert not (tmp_path / "var").exists()  # no database made, let alone migrated
