"""Trace export from real processes, chosen by the standard OTEL_* variables."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import grpc
import pytest
from loansuite.auth.v1 import auth_service_pb2 as auth_pb
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc

from tests.e2e.support import Processes
from tests.support import LOANSUITE

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def console_spans(text: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (indented JSON objects) among the log lines."""
    decoder = json.JSONDecoder()
    spans, position = [], 0
    while (start := text.find("{\n", position)) != -1:
        found, position = decoder.raw_decode(text, start)
        if isinstance(found, dict) and "context" in found:
            spans.append(found)
    return spans


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["sqlite"])
def test_otel_traces_exporter_sends_the_spans_of_the_callers_trace(
    processes: Processes,
) -> None:
    processes.stop("auth")
    processes.env["OTEL_TRACES_EXPORTER"] = "console"
    processes.start("auth")
    with grpc.insecure_channel(f"127.0.0.1:{processes.ports['auth']}") as channel:
        refused = auth_grpc.AuthServiceStub(channel).Login(
            auth_pb.LoginRequest(email="nobody@example.com", password="not the password"),
            metadata=(("traceparent", TRACEPARENT),),
        )
    assert refused.error.reason == "INVALID_CREDENTIALS"
    assert processes.stop("auth") == 0  # spans are flushed as the process exits

    log = processes.log("auth")
    [login] = [s for s in console_spans(log) if s["name"].endswith("AuthService/Login")]
    assert login["context"]["trace_id"] == f"0x{TRACE_ID}"
    assert login["kind"] == "SpanKind.SERVER"
    assert login["attributes"]["loansuite.error.reason"] == "INVALID_CREDENTIALS"
    assert login["resource"]["attributes"]["service.name"] == "auth"
    # The call's log line names the same trace.
    calls = [json.loads(line) for line in log.splitlines() if '"message": "call"' in line]
    assert any(c.get("trace_id") == TRACE_ID and c["rpc"].endswith(".Login") for c in calls)


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_unknown_exporter_is_one_line_and_no_server(processes: Processes) -> None:
    processes.stop("auth")
    started = subprocess.run(
        [LOANSUITE, "serve", "auth"],
        env={**processes.env, "OTEL_TRACES_EXPORTER": "carrier-pigeon"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 2
    assert len(started.stderr.strip().splitlines()) == 1
    assert "OTEL_TRACES_EXPORTER" in started.stderr
    assert "carrier-pigeon" in started.stderr
    assert "Traceback" not in started.stderr


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["sqlite"])
def test_with_nothing_exported_the_call_still_carries_the_callers_trace(
    processes: Processes,
) -> None:
    """No exporter, the default: spans are not recorded, but the log line names the
    caller's trace and a span of the call's own, and a call without one starts a trace."""
    assert "OTEL_TRACES_EXPORTER" not in processes.env
    with grpc.insecure_channel(f"127.0.0.1:{processes.ports['auth']}") as channel:
        stub = auth_grpc.AuthServiceStub(channel)
        request = auth_pb.LoginRequest(email="nobody@example.com", password="not the password")
        stub.Login(request, metadata=(("traceparent", TRACEPARENT),))
        stub.Login(request)
    assert processes.stop("auth") == 0

    log = processes.log("auth")
    assert console_spans(log) == []
    calls = [json.loads(line) for line in log.splitlines() if '"message": "call"' in line]
    joined, started = [c for c in calls if c["rpc"].endswith(".Login")]
    assert joined["trace_id"] == TRACE_ID
    assert len(joined["span_id"]) == 16
    assert joined["span_id"] != TRACEPARENT.split("-")[2]
    assert len(started["trace_id"]) == 32
    assert started["trace_id"] != TRACE_ID
