"""TLS test support: certificates from `certs init`, per-holder settings and client credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from services.certs import init_certs
from services.shared.settings import Settings


def make_certificates(directory: Path) -> Path:
    """A CA and the services' and operator's certificates, as `loansuite certs init` makes them."""
    init_certs(directory)
    return directory


def tls_settings(certificates: Path, holder: str, **settings: Any) -> Settings:
    """Settings of a process that holds holder's certificate and demands client certificates."""
    return Settings(
        tls_cert_file=str(certificates / f"{holder}.crt"),
        tls_key_file=str(certificates / f"{holder}.key"),
        tls_ca_file=str(certificates / "ca.crt"),
        tls_client_auth="require",
        **settings,
    )


def tls_environment(certificates: Path, holder: str) -> dict[str, str]:
    """The LOANSUITE_TLS_* variables of a process holding holder's certificate."""
    return {
        "LOANSUITE_TLS_CERT_FILE": str(certificates / f"{holder}.crt"),
        "LOANSUITE_TLS_KEY_FILE": str(certificates / f"{holder}.key"),
        "LOANSUITE_TLS_CA_FILE": str(certificates / "ca.crt"),
        "LOANSUITE_TLS_CLIENT_AUTH": "require",
    }


def client_credentials(certificates: Path, holder: str | None) -> grpc.ChannelCredentials:
    """Trust the CA and present holder's certificate; None presents no certificate."""
    ca = (certificates / "ca.crt").read_bytes()
    if holder is None:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=(certificates / f"{holder}.key").read_bytes(),
        certificate_chain=(certificates / f"{holder}.crt").read_bytes(),
    )


def refused(channel: grpc.Channel) -> grpc.StatusCode:
    """The status of a Health/Check on channel that the server is expected to refuse."""
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    try:
        check(b"", timeout=10)
    except grpc.RpcError as exc:
        return exc.code()
    raise AssertionError("the server answered a call it should have refused")
