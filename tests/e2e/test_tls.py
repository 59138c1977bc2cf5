"""`loansuite up --tls DIR`: the whole suite over mTLS with the certificates of `certs init`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from loansuite.audit.v1 import audit_service_pb2 as audit_pb
from loansuite.audit.v1 import audit_service_pb2_grpc as audit_grpc
from loansuite.auth.v1 import auth_service_pb2_grpc as auth_grpc
from loansuite.loans.v1 import loan_service_pb2_grpc as loans_grpc

from tests.e2e.support import SERVICES, loan_request, wait_serving
from tests.support import LOANSUITE, Account, free_port, sign_up
from tests.tls_support import client_credentials, refused

pytestmark = pytest.mark.e2e


@dataclass
class SecureSuite:
    """The suite that `up --tls` runs, and the operator's way in."""

    certificates: Path
    ports: dict[str, int]

    def channel(self, service: str, holder: str | None = "operator") -> grpc.Channel:
        credentials = client_credentials(self.certificates, holder)
        return grpc.secure_channel(f"127.0.0.1:{self.ports[service]}", credentials)


def _up_environment(ports: dict[str, int]) -> dict[str, str]:
    env = {**os.environ, **{f"LOANSUITE_{s.upper()}_PORT": str(p) for s, p in ports.items()}}
    for name in SERVICES:  # SQLite files under the data directory
        env.pop(f"LOANSUITE_{name.upper()}_DATABASE_URL", None)
    return env


@pytest.fixture(scope="module")
def secure_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureSuite]:
    directory = tmp_path_factory.mktemp("tls-suite")
    certificates = directory / "certs"
    subprocess.run(
        [LOANSUITE, "certs", "init", "--out", str(certificates)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    ports = {service: free_port() for service in SERVICES}
    command = [LOANSUITE, "up", "--tls", str(certificates), "--data-dir", str(directory / "var")]
    with (directory / "up.log").open("wb") as log:
        up = subprocess.Popen(command, env=_up_environment(ports), stdout=log, stderr=log)
    try:
        for port in ports.values():
            # Generous: three interpreters start at once, on a machine that may be busy.
            wait_serving(port, 90, credentials=client_credentials(certificates, "operator"))
        yield SecureSuite(certificates, ports)
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
    assert code == 0, (directory / "up.log").read_text()[-2000:]


def _audited(suite: SecureSuite, reader: Account, resource_id: str) -> list[audit_pb.AuditEvent]:
    """The events of resource_id that reader may read, once some have arrived."""
    with suite.channel("audit") as channel:
        audit = audit_grpc.AuditServiceStub(channel)
        request = audit_pb.ListAuditEventsRequest(
            filter=audit_pb.AuditEventFilter(resource_id=resource_id)
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = audit.ListAuditEvents(request, metadata=reader.metadata, timeout=10)
            assert response.HasField("page"), response.error
            if response.page.events:
                return list(response.page.events)
            time.sleep(0.2)
    raise AssertionError(f"no audit event of {resource_id} arrived")


def test_register_log_in_create_a_loan_and_see_every_event_arrive_over_mtls(
    secure_suite: SecureSuite,
) -> None:
    with secure_suite.channel("auth") as channel:
        borrower = sign_up(auth_grpc.AuthServiceStub(channel))
    with secure_suite.channel("loans") as channel:
        created = loans_grpc.LoanServiceStub(channel).CreateLoan(
            loan_request(), metadata=borrower.metadata, timeout=10
        )
    assert created.HasField("loan"), created.error

    # Loans verified the token with auth's keys and loaded the user over mTLS; both relays
    # delivered to audit over mTLS, each known by its certificate.
    loan_events = _audited(secure_suite, borrower, created.loan.id)
    user_events = _audited(secure_suite, borrower, borrower.user_id)
    assert [(e.action, e.source) for e in loan_events] == [("LOAN_CREATED", "loans")]
    assert ("USER_REGISTERED", "auth") in {(e.action, e.source) for e in user_events}


@pytest.mark.parametrize("service", SERVICES)
def test_plaintext_and_tls_without_a_certificate_are_refused(
    secure_suite: SecureSuite, service: str
) -> None:
    target = f"127.0.0.1:{secure_suite.ports[service]}"

    with grpc.insecure_channel(target) as channel:
        plaintext = refused(channel)
    with secure_suite.channel(service, holder=None) as channel:
        anonymous = refused(channel)

    assert plaintext == grpc.StatusCode.UNAVAILABLE
    assert anonymous == grpc.StatusCode.UNAVAILABLE


def test_grpcurl_with_the_operators_certificate_lists_the_services(
    secure_suite: SecureSuite,
) -> None:
    grpcurl = str(Path(LOANSUITE).parent / "grpcurl")
    certs = secure_suite.certificates
    flags = ["-cacert", str(certs / "ca.crt")]
    flags += ["-cert", str(certs / "operator.crt"), "-key", str(certs / "operator.key")]

    listed = subprocess.run(
        [grpcurl, *flags, f"localhost:{secure_suite.ports['loans']}", "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert listed.returncode == 0, listed.stderr
    assert "loansuite.loans.v1.LoanService" in listed.stdout.split()


def test_up_tls_without_the_certificates_says_so_and_starts_nothing(tmp_path: Path) -> None:
    ports = {service: free_port() for service in SERVICES}
    command = [LOANSUITE, "up", "--tls", str(tmp_path / "none"), "--data-dir", str(tmp_path)]

    up = subprocess.run(
        command, env=_up_environment(ports), capture_output=True, text=True, timeout=60, check=False
    )

    assert up.returncode == 2
    assert up.stderr.startswith("loansuite: ")
    assert "loansuite certs init --out" in up.stderr
    assert up.stderr.count("\n") == 1
    assert not list(tmp_path.glob("*.db"))
