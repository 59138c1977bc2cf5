"""gen/ is exactly what the protos generate; a stale tree fails."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_protos.py"


def check(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--gen", str(tree)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_committed_gen_tree_is_fresh() -> None:
    result = check(ROOT / "gen")
    assert result.returncode == 0, result.stderr


def test_a_hand_edited_or_missing_file_is_reported_stale(tmp_path: Path) -> None:
    tree = tmp_path / "gen"
    shutil.copytree(ROOT / "gen", tree, ignore=shutil.ignore_patterns("__pycache__"))
    edited = tree / "loansuite" / "loans" / "v1" / "loan_service_pb2.pyi"
    edited.write_text(edited.read_text() + "\n# edited\n")
    (tree / "loansuite" / "audit" / "v1" / "audit_service_pb2_grpc.py").unlink()

    result = check(tree)

    assert result.returncode == 1
    assert "loan_service_pb2.pyi" in result.stderr
    assert "audit_service_pb2_grpc.py" in result.stderr
