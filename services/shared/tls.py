"""TLS from the LOANSUITE_TLS_* settings: server credentials, channels, the verified peer.

With a certificate and key configured, a server listens with TLS only, and every
call it makes to another service goes over TLS against the configured CA,
presenting the same certificate as its client certificate. With
``tls_client_auth = "require"`` servers demand a client certificate signed by
that CA, and the peer's identity (its ``spiffe://loansuite/<name>`` URI SAN) is
what ``peer_service`` reads. Without a certificate everything stays plaintext,
and nothing here runs on a call's path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc

from services.shared.identity import service_from_spiffe_ids
from services.shared.settings import Settings
from services.shared.tracing import traced

__all__ = ["TlsConfig", "TlsSettingsError", "open_channel", "peer_service", "tls_config"]

ChannelOptions = Sequence[tuple[str, int | str]]
# grpc core lists the verified peer's URI SANs alone under this property (and every SAN,
# DNS and IP ones too, under x509_subject_alternative_name): only a URI names a holder.
_URI_SAN_PROPERTY = "peer_uri"


class TlsSettingsError(ValueError):
    """The TLS settings are incomplete or name files that cannot be read."""


@dataclass(frozen=True, repr=False)
class TlsConfig:
    """This process's certificate and key (PEM), the CA to trust, and whether peers must show one.

    repr is off: the private key must never reach a log line.
    """

    certificate: bytes
    private_key: bytes
    ca: bytes | None
    require_client_auth: bool

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate)],
            root_certificates=self.ca,
            require_client_auth=self.require_client_auth,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        # The own certificate goes along as client certificate; a server that does not
        # ask for one never sees it.
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca,
            private_key=self.private_key,
            certificate_chain=self.certificate,
        )


def tls_config(settings: Settings) -> TlsConfig | None:
    """The TLS configuration of settings, None for plaintext; TlsSettingsError if incomplete."""
    cert, key, ca = settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file
    if not (cert or key):
        if settings.tls_client_auth == "require" or ca:
            raise TlsSettingsError(
                "LOANSUITE_TLS_CA_FILE and LOANSUITE_TLS_CLIENT_AUTH need "
                "LOANSUITE_TLS_CERT_FILE and LOANSUITE_TLS_KEY_FILE"
            )
        return None
    if not (cert and key):
        raise TlsSettingsError("LOANSUITE_TLS_CERT_FILE and LOANSUITE_TLS_KEY_FILE go together")
    if settings.tls_client_auth == "require" and not ca:
        raise TlsSettingsError(
            "LOANSUITE_TLS_CLIENT_AUTH=require needs LOANSUITE_TLS_CA_FILE to verify clients"
        )
    return TlsConfig(
        certificate=_read(cert, "LOANSUITE_TLS_CERT_FILE"),
        private_key=_read(key, "LOANSUITE_TLS_KEY_FILE"),
        ca=_read(ca, "LOANSUITE_TLS_CA_FILE") if ca else None,
        require_client_auth=settings.tls_client_auth == "require",
    )


def _read(path: str, setting: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TlsSettingsError(f"{setting}: cannot read {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise TlsSettingsError(f"{setting}: {path} holds no PEM data")
    return data


def open_channel(
    target: str, tls: TlsConfig | None, *, options: ChannelOptions = ()
) -> grpc.Channel:
    """A channel to another service: TLS against the configured CA, or plaintext without TLS;
    each call in a CLIENT span, the trace context sent on (tracing.traced)."""
    if tls is None:
        return traced(grpc.insecure_channel(target, options=options))
    return traced(grpc.secure_channel(target, tls.channel_credentials(), options=options))


def peer_service(context: grpc.ServicerContext) -> str:
    """The loansuite name in the caller's verified certificate ("loans"); "" without one.

    grpc fills the auth context only from a certificate that verified against the
    server's CA, so a name found here was signed by that CA.
    """
    # grpc-stubs types each value as bytes; grpc gives a list of them per property.
    properties = cast(Mapping[str, Sequence[bytes]], context.auth_context())
    uris = properties.get(_URI_SAN_PROPERTY, ())
    return service_from_spiffe_ids(value.decode(errors="replace") for value in uris)
