"""The operator commands: `loansuite up` and `loansuite create-admin`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc

from tests.e2e.support import SERVICES, children, wait_handling_sigterm, wait_serving
from tests.support import LOANSUITE, free_port, log_in, sign_up

pytestmark = pytest.mark.e2e


def test_up_runs_three_processes_and_stops_them_all_on_sigterm(tmp_path: Path) -> None:
    ports = {service: free_port() for service in SERVICES}
    env = {**os.environ, **{f"LOANSUITE_{s.upper()}_PORT": str(p) for s, p in ports.items()}}
    with (tmp_path / "up.log").open("wb") as log:
        up = subprocess.Popen(
            [LOANSUITE, "up", "--data-dir", str(tmp_path / "var")], env=env, stdout=log, stderr=log
        )
    try:
        for port in ports.values():
            wait_serving(port)
        wait_handling_sigterm(*children(up.pid))
        assert sorted(p.name for p in (tmp_path / "var").glob("*.db")) == [
            "audit.db",
            "auth.db",
            "loans.db",
        ]
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
    assert code == 0
    log_text = (tmp_path / "up.log").read_text()
    assert log_text.count('"message": "stopped"') == 3


def test_create_admin_makes_an_admin_who_can_log_in(tmp_path: Path) -> None:
    env = {**os.environ, "LOANSUITE_ADMIN_PASSWORD": "operator chosen secret"}
    command = [
        LOANSUITE,
        "create-admin",
        "--data-dir",
        str(tmp_path),
        "--email",
        "ops@example.com",
        "--name",
        "Operator",
    ]

    created = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    again = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert created.returncode == 0, created.stderr
    assert again.returncode == 1
    assert "EMAIL_TAKEN" in again.stderr
    assert "Traceback" not in again.stderr
    port = free_port()
    with subprocess.Popen(
        [LOANSUITE, "serve", "auth", "--data-dir", str(tmp_path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as auth:
        try:
            wait_serving(port)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                login = auth_grpc.AuthServiceStub(channel).Login(
                    auth_pb.LoginRequest(email="ops@example.com", password="operator chosen secret")
                )
        finally:
            auth.terminate()
    assert login.session.user.role == auth_pb.USER_ROLE_ADMIN
    assert login.session.user.organization.type == auth_pb.ORGANIZATION_TYPE_PLATFORM


def test_up_on_embedded_postgresql_keeps_its_data_between_runs(tmp_path: Path) -> None:
    ports = {service: free_port() for service in SERVICES}
    env = {**os.environ, **{f"LOANSUITE_{s.upper()}_PORT": str(p) for s, p in ports.items()}}
    for name in SERVICES:
        env.pop(f"LOANSUITE_{name.upper()}_DATABASE_URL", None)
    data = tmp_path / "var"
    command = [LOANSUITE, "up", "--database", "postgresql", "--data-dir", str(data)]

    with _running(command, env, tmp_path / "first.log", ports) as auth:
        email = sign_up(auth).email
    assert not (data / "postgres" / "data" / "postmaster.pid").exists()  # stopped with the suite
    assert "embedded PostgreSQL on 127.0.0.1:" in (tmp_path / "first.log").read_text()
    assert not list(data.glob("*.db"))

    with _running(command, env, tmp_path / "second.log", ports) as auth:
        assert log_in(auth, email).user_id


def test_up_refuses_a_configured_postgresql_that_does_not_answer(tmp_path: Path) -> None:
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/loans"
    ports = {service: free_port() for service in SERVICES}  # not the defaults another test holds
    env = {
        **os.environ,
        **{f"LOANSUITE_{s.upper()}_PORT": str(p) for s, p in ports.items()},
        "LOANSUITE_LOANS_DATABASE_URL": unreachable,
    }

    up = _refused_up(["--database", "postgresql", "--data-dir", str(tmp_path)], env)

    assert up.returncode == 2
    assert up.stderr.startswith(
        "loansuite: LOANSUITE_LOANS_DATABASE_URL names a PostgreSQL server that does not answer"
    )
    assert up.stderr.count("\n") == 1
    assert not (tmp_path / "postgres").exists()  # no embedded server in its place


def _refused_up(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`loansuite up` where it is expected to stop before it starts anything."""
    return subprocess.run(
        [LOANSUITE, "up", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@contextlib.contextmanager
def _running(
    command: list[str], env: dict[str, str], log: Path, ports: dict[str, int]
) -> Iterator[auth_grpc.AuthServiceStub]:
    """`loansuite up` until the block ends, then SIGTERM; yields a client of its auth."""
    with log.open("wb") as out:
        up = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    try:
        for port in ports.values():
            wait_serving(port)
        wait_handling_sigterm(*children(up.pid))
        with grpc.insecure_channel(f"127.0.0.1:{ports['auth']}") as channel:
            yield auth_grpc.AuthServiceStub(channel)
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
    assert code == 0  # reached only when nothing above failed, which it would hide


def test_up_on_a_taken_port_says_which_and_starts_nothing(tmp_path: Path) -> None:
    ports = {service: free_port() for service in SERVICES}
    env = {**os.environ, **{f"LOANSUITE_{s.upper()}_PORT": str(p) for s, p in ports.items()}}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["loans"]))
        holder.listen()
        up = _refused_up(["--data-dir", str(tmp_path / "var")], env)

    assert up.returncode == 2
    assert up.stderr == (
        f"loansuite: port {ports['loans']} (loans) taken by another program; nothing was started\n"
    )
    assert not (tmp_path / "var").exists()


def test_up_names_the_service_that_died(tmp_path: Path) -> None:
    ports = {service: free_port() for service in SERVICES}
    env = {**os.environ, **{f"LOANSUITE_{s.upper()}_PORT": str(p) for s, p in ports.items()}}
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [LOANSUITE, "up", "--data-dir", str(tmp_path / "var")], env=env, stdout=out, stderr=out
        )
    try:
        for port in ports.values():
            wait_serving(port)
        loans = next(
            c for c in children(up.pid) if b"loans" in Path(f"/proc/{c}/cmdline").read_bytes()
        )
        os.kill(loans, signal.SIGKILL)
        code = up.wait(60)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()

    assert code != 0
    assert "loansuite: loans exited with status -9; stopped the others" in log.read_text()
