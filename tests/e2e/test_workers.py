"""`loansuite serve SERVICE --workers N`: N processes on one port, started and stopped as one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import children, wait_handling_sigterm, wait_serving
from tests.support import LOANSUITE, eventually, free_port

pytestmark = pytest.mark.e2e


def serve(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LOANSUITE_DATA_DIR": str(tmp_path / "var")}
    with (tmp_path / "serve.log").open("ab") as log:  # the child keeps its own
        return subprocess.Popen([LOANSUITE, "serve", *args], env=env, stdout=log, stderr=log)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    supervisor = serve(tmp_path, "auth", "--workers", "2", "--port", str(port))
    try:
        wait_serving(port)
        eventually(lambda: len(children(supervisor.pid)) == 2, "two workers run")
        wait_handling_sigterm(*children(supervisor.pid))
        yield supervisor, port
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(30)


def test_two_workers_share_the_port_and_stop_together(
    workers: tuple[subprocess.Popen[bytes], int],
) -> None:
    supervisor, port = workers
    pids = children(supervisor.pid)
    for pid in pids:  # each worker listens on the port itself
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[-3:-1] == [b"--port", str(port).encode()]

    supervisor.send_signal(signal.SIGTERM)

    assert supervisor.wait(60) == 0
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def test_a_worker_that_dies_stops_the_service_and_is_named(
    workers: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    supervisor, _ = workers
    dead, *others = children(supervisor.pid)

    os.kill(dead, signal.SIGKILL)

    assert supervisor.wait(60) != 0
    assert not [pid for pid in others if Path(f"/proc/{pid}").exists()]
    log = (tmp_path / "serve.log").read_text()
    assert "a worker exited" in log
    assert str(dead) in log


def test_a_port_another_program_holds_fails_loudly(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        supervisor = serve(tmp_path, "auth", "--workers", "2", "--port", str(port))

        assert supervisor.wait(60) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in (tmp_path / "serve.log").read_text()


def test_several_loans_workers_need_postgresql(tmp_path: Path) -> None:
    supervisor = serve(tmp_path, "loans", "--workers", "2", "--port", str(free_port()))

    assert supervisor.wait(60) == 2
    assert "need PostgreSQL" in (tmp_path / "serve.log").read_text()
