"""`serve --workers N`: one side port whose /metrics adds up every worker, whichever answers."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from loansuite.auth.v1 import auth_service_pb2 as pb
from loansuite.auth.v1.auth_service_pb2_grpc import AuthServiceStub
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.support import wait_serving
from tests.support import LOANSUITE, SERVICE_SECRET, free_port

pytestmark = pytest.mark.e2e

CALLS = 6


def scrape(port: int) -> dict[str, float]:
    """ListPublicKeys answered OK, and the pool size, as one scrape reports them."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "loansuite_db_pool_size":
                found["pool_size"] = sample.value
            if sample.name == "grpc_server_handled_total" and sample.labels == {
                "grpc_type": "unary",
                "grpc_service": "loansuite.auth.v1.AuthService",
                "grpc_method": "ListPublicKeys",
                "grpc_code": "OK",
            }:
                found["handled"] = sample.value
    return found


def test_every_scrape_reports_all_workers(tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "LOANSUITE_DATA_DIR": str(tmp_path),
        "LOANSUITE_SERVICE_SECRET": SERVICE_SECRET,
        "LOANSUITE_AUDIT_TARGET": "127.0.0.1:1",  # events wait in the outbox
        "LOANSUITE_AUTH_HTTP_PORT": str(http_port),
    }
    command = [LOANSUITE, "serve", "auth", "--port", str(port), "--workers", "2"]
    with (tmp_path / "auth.log").open("ab") as log:
        supervisor = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    try:
        wait_serving(port)
        deadline = time.monotonic() + 60
        while scrape(http_port).get("pool_size") != 20.0:  # the second worker is starting
            assert time.monotonic() < deadline, "the second worker never reported"
            time.sleep(0.2)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = AuthServiceStub(channel)
            for _ in range(CALLS):
                stub.ListPublicKeys(pb.ListPublicKeysRequest())
        # Each scrape may be answered by either worker (the port is shared).
        scrapes = [scrape(http_port) for _ in range(4)]
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(60)

    # Default pools of 10 connections, one per worker: both are counted in every answer.
    assert scrapes == [{"handled": CALLS, "pool_size": 20.0}] * 4
    assert code == 0
