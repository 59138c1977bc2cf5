"""The retry policy shipped in clients/ is the one the Python client carries."""

from __future__ import annotations

import json
from pathlib import Path

from loansuite_client import READ_METHODS, SERVICE_CONFIG

SHIPPED = Path(__file__).resolve().parents[2] / "clients" / "service-config.json"


def test_the_shipped_service_config_is_the_clients() -> None:
    assert json.loads(SHIPPED.read_text()) == json.loads(SERVICE_CONFIG)


def test_it_names_every_read_method_and_retries_only_unavailable() -> None:
    (policy,) = json.loads(SERVICE_CONFIG)["methodConfig"]
    named = {f"{n['service']}/{n['method']}" for n in policy["name"]}
    assert named == READ_METHODS
    assert policy["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
