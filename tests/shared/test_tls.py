"""TLS from settings: a server speaks TLS only, demands certificates if told, and names its peer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from services.shared.identity import service_from_spiffe_ids
from services.shared.server import Registration, Server, create_server
from services.shared.settings import Settings
from services.shared.tls import TlsSettingsError, open_channel, peer_service, tls_config
from tests.tls_support import client_credentials, make_certificates, refused, tls_settings

PEER = "/loansuite.test.Peer/Name"


def _register_peer_name(server: grpc.Server) -> None:
    """A method that answers with the service named by the caller's verified certificate."""
    handler = grpc.unary_unary_rpc_method_handler(
        lambda _request, context: peer_service(context).encode()
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("loansuite.test.Peer", {"Name": handler}),)
    )


def _peer_name(channel: grpc.Channel) -> str:
    call = channel.unary_unary(
        PEER, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
    )
    answer: bytes = call(b"", timeout=10)
    return answer.decode()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(params=["thread", "aio"])
def server(request: pytest.FixtureRequest, certificates: Path) -> Iterator[Server]:
    """A server holding audit's certificate that demands client certificates."""
    running = create_server(
        [Registration("loansuite.test.Peer", _register_peer_name)],
        "127.0.0.1:0",
        max_workers=2,
        model=request.param,
        tls=tls_config(tls_settings(certificates, "audit")),
    )
    yield running
    running.stop(0)


@pytest.mark.parametrize("holder", ["loans", "auth", "operator"])
def test_a_client_with_a_certificate_of_the_ca_is_known_by_its_spiffe_name(
    server: Server, certificates: Path, holder: str
) -> None:
    target = f"127.0.0.1:{server.port}"
    with grpc.secure_channel(target, client_credentials(certificates, holder)) as channel:
        assert _peer_name(channel) == holder


def test_the_shared_channel_presents_the_services_own_certificate(
    server: Server, certificates: Path
) -> None:
    tls = tls_config(tls_settings(certificates, "loans"))

    with open_channel(f"localhost:{server.port}", tls) as channel:
        assert _peer_name(channel) == "loans"


def test_plaintext_no_certificate_and_a_foreign_ca_are_refused(
    server: Server, certificates: Path, tmp_path: Path
) -> None:
    target = f"127.0.0.1:{server.port}"
    foreign = make_certificates(tmp_path / "foreign")
    # The foreign client trusts the right CA but presents a certificate another CA signed.
    impostor = grpc.ssl_channel_credentials(
        root_certificates=(certificates / "ca.crt").read_bytes(),
        private_key=(foreign / "loans.key").read_bytes(),
        certificate_chain=(foreign / "loans.crt").read_bytes(),
    )
    channels = {
        "plaintext": grpc.insecure_channel(target),
        "no certificate": grpc.secure_channel(target, client_credentials(certificates, None)),
        "foreign CA": grpc.secure_channel(target, impostor),
    }
    try:
        codes = {name: refused(channel) for name, channel in channels.items()}
    finally:
        for channel in channels.values():
            channel.close()
    assert codes == dict.fromkeys(channels, grpc.StatusCode.UNAVAILABLE)


def test_without_client_auth_tls_clients_need_no_certificate_and_plaintext_is_refused(
    certificates: Path,
) -> None:
    settings = tls_settings(certificates, "audit").model_copy(update={"tls_client_auth": "none"})
    server = create_server(
        [Registration("loansuite.test.Peer", _register_peer_name)],
        "127.0.0.1:0",
        max_workers=2,
        tls=tls_config(settings),
    )
    target = f"127.0.0.1:{server.port}"
    try:
        with grpc.secure_channel(target, client_credentials(certificates, None)) as channel:
            assert _peer_name(channel) == ""
        with grpc.insecure_channel(target) as channel:
            assert refused(channel) == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(0)


def test_no_tls_settings_means_plaintext() -> None:
    assert tls_config(Settings()) is None


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tls_cert_file": "x.crt"}, "go together"),
        ({"tls_key_file": "x.key"}, "go together"),
        ({"tls_ca_file": "ca.crt"}, "need LOANSUITE_TLS_CERT_FILE"),
        ({"tls_client_auth": "require"}, "need LOANSUITE_TLS_CERT_FILE"),
        (
            {"tls_cert_file": "x.crt", "tls_key_file": "x.key", "tls_client_auth": "require"},
            "needs LOANSUITE_TLS_CA_FILE",
        ),
    ],
)
def test_incomplete_settings_are_refused_naming_the_setting(
    settings: dict[str, str], message: str
) -> None:
    with pytest.raises(TlsSettingsError, match=message):
        tls_config(Settings.model_validate(settings))


def test_a_missing_or_non_pem_file_is_refused_naming_it(certificates: Path, tmp_path: Path) -> None:
    missing = tls_settings(certificates, "loans").model_copy(
        update={"tls_key_file": str(tmp_path / "absent.key")}
    )
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate")
    not_pem = tls_settings(certificates, "loans").model_copy(update={"tls_cert_file": str(garbage)})

    with pytest.raises(TlsSettingsError, match=r"LOANSUITE_TLS_KEY_FILE: cannot read .*absent"):
        tls_config(missing)
    with pytest.raises(TlsSettingsError, match=r"LOANSUITE_TLS_CERT_FILE: .* holds no PEM data"):
        tls_config(not_pem)


def test_the_configuration_never_shows_its_private_key(certificates: Path) -> None:
    tls = tls_config(tls_settings(certificates, "loans"))

    assert tls is not None
    assert b"PRIVATE KEY" in tls.private_key
    assert "PRIVATE KEY" not in repr(tls)


@pytest.mark.parametrize(
    ("ids", "name"),
    [
        (["spiffe://loansuite/loans"], "loans"),
        (["https://example.com", "spiffe://loansuite/auth"], "auth"),
        (["spiffe://other/loans"], ""),
        (["spiffe://loansuite/loans", "spiffe://loansuite/auth"], ""),
        ([], ""),
    ],
)
def test_a_certificate_names_one_holder_or_none(ids: list[str], name: str) -> None:
    assert service_from_spiffe_ids(ids) == name
