"""The operator commands: `loansuite up` and `loansuite create-admin`."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import grpc
import pytest
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc

from tests.e2e.support import SERVICES, wait_serving
from tests.support import LOANSUITE, free_port

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
