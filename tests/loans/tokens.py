"""Access tokens signed as the auth service signs them, with its key read from its database."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import text

from services.auth.key_encryption import load_key_encryption_key
from tests.loans.database import connected
from tests.support import Account, Suite


class SigningKey(NamedTuple):
    """A key that signs access tokens, and the id that names it in a token's header."""

    kid: str
    key: Ed25519PrivateKey


def current_signing_key(suite: Suite) -> SigningKey:
    """The auth service's current signing key, read from its database and unsealed."""
    query = "SELECT kid, sealed_private_key FROM signing_keys ORDER BY generation DESC LIMIT 1"
    with connected(suite, "auth") as conn:
        kid, sealed = conn.execute(text(query)).one()
    kek = load_key_encryption_key(suite.settings.key_encryption_key, suite.settings.data_dir)
    key = load_pem_private_key(kek.unseal(kid, sealed).encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey), type(key)
    return SigningKey(kid, key)


def mint(signing_key: SigningKey, account: Account, **claims: Any) -> str:
    """An access token for account signed as auth signs one; claims replace the usual ones."""
    now = int(time.time())
    payload = {
        "iss": "loansuite-auth",
        "aud": "loansuite",
        "sub": account.user_id,
        "iat": now,
        "exp": now + 300,
        "org": account.organization_id,
        "role": "BORROWER",
        **claims,
    }
    headers = {"kid": signing_key.kid}
    return jwt.encode(payload, signing_key.key, algorithm="EdDSA", headers=headers)
