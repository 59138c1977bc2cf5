"""The public signing keys as a JWK Set (RFC 7517, OKP keys of RFC 8037), for JOSE verifiers.

Read through the same use case as ListPublicKeys, so both name the same kids;
an Envoy ``jwt_authn`` filter or any JOSE library verifies access tokens with it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from jwt.algorithms import OKPAlgorithm

from services.auth import use_cases
from services.shared.db import Database
from services.shared.identity import verification_keys

__all__ = ["JWKS_PATH", "jwks_document"]

JWKS_PATH = "/.well-known/jwks.json"


def jwks_document(db: Database, *, keep_for: timedelta) -> bytes:
    """Every key that may have signed a live token (of lifetime keep_for), as a JWK Set."""
    with db.read() as session:
        rows = use_cases.list_public_keys(session, keep_for=keep_for)
        pems = [(row.kid, row.public_key_pem) for row in rows]
    keys: list[dict[str, Any]] = []
    for kid, public_key in verification_keys(pems).items():
        jwk = dict(OKPAlgorithm.to_jwk(public_key, as_dict=True))  # kty OKP, crv Ed25519, x
        keys.append({**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"})
    return json.dumps({"keys": keys}, separators=(",", ":")).encode()
