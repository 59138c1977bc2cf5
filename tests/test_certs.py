"""`loansuite certs init`: a CA, a certificate per service and one for an operator, kept private."""

from __future__ import annotations

import ipaddress
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from services.certs import CertsError, init_certs
from tests.support import LOANSUITE

HOLDERS = ("auth", "loans", "audit", "operator")


def _certificate(directory: Path, holder: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((directory / f"{holder}.crt").read_bytes())


def _names(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


@pytest.mark.parametrize("service", ["auth", "loans", "audit"])
def test_each_service_is_named_by_spiffe_id_and_valid_for_localhost_and_its_name(
    tmp_path: Path, service: str
) -> None:
    init_certs(tmp_path)
    cert = _certificate(tmp_path, service)

    names = _names(cert)
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"spiffe://loansuite/{service}"
    ]
    assert names.get_values_for_type(x509.DNSName) == ["localhost", service]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.IPv4Address("127.0.0.1")]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}


def test_the_operator_is_a_client_only_and_every_certificate_is_signed_by_the_ca(
    tmp_path: Path,
) -> None:
    init_certs(tmp_path)
    ca = _certificate(tmp_path, "ca")
    operator = _certificate(tmp_path, "operator")

    assert _names(operator).get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://loansuite/operator"
    ]
    assert list(operator.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for holder in HOLDERS:
        _certificate(tmp_path, holder).verify_directly_issued_by(ca)  # raises if not


def test_keys_are_0600_and_the_directory_0700_whatever_the_umask(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    previous = os.umask(0)
    try:
        written = init_certs(out)
    finally:
        os.umask(previous)

    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in written}
    assert {name for name, mode in modes.items() if mode == 0o600} == {
        f"{holder}.key" for holder in ("ca", *HOLDERS)
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(modes)  # nothing staged is left


def test_an_existing_ca_is_kept_unless_forced(tmp_path: Path) -> None:
    init_certs(tmp_path)
    ca = (tmp_path / "ca.crt").read_bytes()

    with pytest.raises(CertsError, match="--force"):
        init_certs(tmp_path)
    assert (tmp_path / "ca.crt").read_bytes() == ca

    init_certs(tmp_path, force=True)
    assert (tmp_path / "ca.crt").read_bytes() != ca
    _certificate(tmp_path, "loans").verify_directly_issued_by(_certificate(tmp_path, "ca"))


def test_the_command_writes_the_files_and_refuses_to_overwrite_in_one_line(
    tmp_path: Path,
) -> None:
    command = [LOANSUITE, "certs", "init", "--out", str(tmp_path / "certs")]

    made = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    again = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    assert made.returncode == 0, made.stderr
    assert '"operator.key"' in made.stdout
    assert again.returncode == 2
    assert again.stderr.startswith("loansuite: ")
    assert again.stderr.count("\n") == 1
