"""`loansuite certs init`: a development CA, a certificate per service and one for an operator.

Every certificate names its holder in a URI SAN, ``spiffe://loansuite/<name>``;
with client authentication required, that is the identity a server reads from
the verified peer (audit accepts events only from loans and auth by it). The
services' certificates serve and call with one key: they are valid for
``localhost``, the service's own name and 127.0.0.1, for both server and client
authentication. The operator's is a client certificate only, for grpcurl.

Keys are ECDSA P-256, which every TLS stack speaks (grpcio's BoringSSL, Go's
crypto/tls in grpcurl). Private keys are written 0600 and the directory made
0700 whatever the umask. This is a development CA: production deployments bring
their own PKI and name its files in LOANSUITE_TLS_*.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.shared.identity import spiffe_id

__all__ = ["CA_FILES", "OPERATOR", "SERVICES", "CertsError", "init_certs"]

SERVICES = ("auth", "loans", "audit")
OPERATOR = "operator"
CA_FILES = ("ca.crt", "ca.key")
CA_LIFETIME = timedelta(days=3650)
LEAF_LIFETIME = timedelta(days=825)
# A certificate is valid from a little before its making: clocks of the machines
# that check it may run slightly behind.
_BACKDATE = timedelta(minutes=5)


class CertsError(Exception):
    """The certificates cannot be made as asked (an existing CA without --force)."""


def init_certs(out: Path, *, force: bool = False) -> list[Path]:
    """Make the CA and every certificate in out; returns the files written."""
    if not force and any((out / name).exists() for name in CA_FILES):
        raise CertsError(f"{out} already holds a CA; pass --force to replace it and every cert")
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o700)
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key, now)
    written = _write_pair(out, "ca", ca_cert, ca_key)
    for service in SERVICES:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf(key, service, ca_cert, ca_key, now, server=True)
        written += _write_pair(out, service, cert, key)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _leaf(key, OPERATOR, ca_cert, ca_key, now, server=False)
    return written + _write_pair(out, OPERATOR, cert, key)


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loansuite development CA")])
    public = key.public_key()
    return (
        _builder(name, name, public, now, CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf(
    key: ec.EllipticCurvePrivateKey,
    holder: str,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime,
    *,
    server: bool,
) -> x509.Certificate:
    """A certificate for holder, signed by the CA; server=True also makes it a server's."""
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(spiffe_id(holder))]
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        names += [
            x509.DNSName("localhost"),
            x509.DNSName(holder),
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
        ]
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, holder)])
    public = key.public_key()
    return (
        _builder(subject, ca_cert.subject, public, now, LEAF_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    now: datetime,
    lifetime: timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + lifetime)
    )


def _key_usage(*, sign_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not sign_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certificates,
        crl_sign=sign_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _write_pair(
    out: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> list[Path]:
    """name.crt (0644) and name.key (0600, PKCS#8, unencrypted: grpcio reads no passphrase)."""
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path = _write(out / f"{name}.key", key_pem, 0o600)
    cert_path = _write(out / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return [cert_path, key_path]


def _write(path: Path, data: bytes, mode: int) -> Path:
    """Write data to path with mode, whatever the umask, replacing it in one step."""
    staged = path.with_name(f".{path.name}-{secrets.token_hex(8)}")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, mode)
        file.write(data)
        file.flush()
        os.fsync(fd)
    os.replace(staged, path)
    return path
