"""/metrics on the HTTP side port: the gRPC series, envelope errors, relays, audit, pools."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from loansuite.loans.v1 import loan_service_pb2 as loans_pb
from prometheus_client.parser import text_string_to_metric_families

from services.shared.http import SidePort, start_side_port
from tests.support import Suite

LOANS = "loansuite.loans.v1.LoanService"
AUTH = "loansuite.auth.v1.AuthService"
# Samples by (name, sorted labels).
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def side_port() -> Iterator[SidePort]:
    port = start_side_port("127.0.0.1", 0)
    yield port
    port.stop()


def scrape(side_port: SidePort) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{side_port.port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        text = r.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_an_ok_call_and_an_envelope_error_are_told_apart(suite: Suite, side_port: SidePort) -> None:
    account = suite.register()
    before = scrape(side_port)
    listed = suite.loans.ListLoans(
        loans_pb.ListLoansRequest(), metadata=(("authorization", f"Bearer {account.access_token}"),)
    )
    refused = suite.loans.ListLoans(loans_pb.ListLoansRequest())  # no token
    after = scrape(side_port)

    assert listed.HasField("page"), listed.error
    assert refused.HasField("error")
    call = {"grpc_type": "unary", "grpc_service": LOANS, "grpc_method": "ListLoans"}
    handled = "grpc_server_handled_total"
    started = "grpc_server_started_total"
    count = "grpc_server_handling_seconds_count"
    assert value(after, started, **call) - value(before, started, **call) == 2
    # Both answered with status OK: only the error counter tells the refusal apart.
    assert (
        value(after, handled, **call, grpc_code="OK")
        - value(before, handled, **call, grpc_code="OK")
        == 2
    )
    error = {
        "grpc_method": "ListLoans",
        "code": "UNAUTHENTICATED",
        "reason": refused.error.reason,
    }
    errors = "loansuite_envelope_errors_total"
    assert value(after, errors, **error) - value(before, errors, **error) == 1
    assert value(after, count, **call) - value(before, count, **call) == 2
    infinite = value(after, "grpc_server_handling_seconds_bucket", **call, le="+Inf")
    assert infinite == value(after, count, **call)


def test_relays_audit_and_pools_have_their_series(suite: Suite, side_port: SidePort) -> None:
    suite.register()  # auth's relay delivers USER_REGISTERED and USER_LOGGED_IN to audit
    deadline = time.monotonic() + 30
    samples = scrape(side_port)
    while value(samples, "loansuite_audit_chain_head_sequence") < 2:
        assert time.monotonic() < deadline, "audit never reported its chain head"
        time.sleep(0.2)
        samples = scrape(side_port)

    assert value(samples, "loansuite_relay_delivered_total", source="auth") >= 2
    assert value(samples, "loansuite_audit_lag_seconds_count") >= 2
    for source in ("auth", "loans"):
        assert (("source", source),) in {
            labels for name, labels in samples if name == "loansuite_outbox_pending"
        }
        assert ("loansuite_outbox_oldest_age_seconds", (("source", source),)) in samples
    for database in ("auth", "loans", "audit"):
        assert value(samples, "loansuite_db_pool_size", database=database) >= 1
        assert ("loansuite_db_pool_checked_out", (("database", database),)) in samples


def test_other_paths_are_not_found(side_port: SidePort) -> None:
    url = f"http://127.0.0.1:{side_port.port}/.well-known/jwks.json"  # not on this port
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(url, timeout=10)
    missing.value.close()
    assert missing.value.code == 404
