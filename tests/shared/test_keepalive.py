"""A client that pings every 10 s keeps an idle stream open for over a minute."""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.shared.server import create_server

# What grpc-js and grpc-java clients commonly set; grpc core's own default server policy
# answered such a client with GOAWAY too_many_pings within a minute.
CLIENT_KEEPALIVE = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),  # ping on, as those clients do
)
IDLE_SECONDS = 70


@pytest.mark.slow
def test_an_idle_stream_outlives_a_minute_of_client_keepalive_pings() -> None:
    server = create_server([], "127.0.0.1:0")
    server.set_health("loansuite.idle", True)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}", options=CLIENT_KEEPALIVE)
    try:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="loansuite.idle")
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        time.sleep(IDLE_SECONDS)  # nothing but pings cross the connection meanwhile
        server.set_health("loansuite.idle", False)
        # The same stream still delivers: the connection was never closed under it.
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
    finally:
        channel.close()
        server.stop(0)
