"""/.well-known/jwks.json on auth's side port: a JOSE client verifies a login token with it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import jwt
import pytest
from loansuite.auth.v1 import auth_service_pb2 as pb

from services.shared.http import SidePort, start_side_port
from tests.auth.support import AuthService


@pytest.fixture
def side_port(auth: AuthService) -> Iterator[SidePort]:
    port = start_side_port("127.0.0.1", 0, documents=auth.server.documents)
    yield port
    port.stop()


def test_pyjwt_verifies_a_login_token_against_the_jwks_url(
    auth: AuthService, side_port: SidePort
) -> None:
    token = auth.person().session.access_token
    url = f"http://127.0.0.1:{side_port.port}/.well-known/jwks.json"

    signing_key = jwt.PyJWKClient(url, cache_keys=False).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=["EdDSA"],
        audience=auth.settings.token_audience,
        issuer=auth.settings.token_issuer,
    )

    assert claims["sub"]
    assert signing_key.key_id == jwt.get_unverified_header(token)["kid"]


def test_the_jwk_set_names_the_kids_of_list_public_keys_as_rfc_8037_keys(
    auth: AuthService, side_port: SidePort
) -> None:
    url = f"http://127.0.0.1:{side_port.port}/.well-known/jwks.json"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"] == "application/json"
        document = json.loads(response.read())
    listed = auth.stub.ListPublicKeys(pb.ListPublicKeysRequest()).key_set.keys

    assert [key["kid"] for key in document["keys"]] == [key.kid for key in listed]
    for key in document["keys"]:
        assert {k: key[k] for k in ("kty", "crv", "alg", "use")} == {
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
        }
        assert "d" not in key  # never the private half
        assert len(jwt.utils.base64url_decode(key["x"])) == 32
