"""Ed25519 key material, access-token minting (JWT), refresh tokens, and the local key ring.

Access tokens are EdDSA JWTs whose ``kid`` header is the key's RFC 7638
thumbprint, so the id follows from the key itself and never collides by
accident. Refresh tokens are random strings that the database only knows by
their SHA-256: a leaked table does not hand out sessions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select

from services.auth.models import SigningKey
from services.shared.db import Database
from services.shared.identity import SERVICE_SUBJECT_PREFIX, CachedKeyRing, Role, verification_keys

__all__ = [
    "ALGORITHM",
    "IssuedToken",
    "KeyMaterial",
    "LocalKeyRing",
    "LocalServiceTokens",
    "SigningKeySource",
    "TokenMinter",
    "generate_key_material",
    "new_refresh_token",
    "refresh_token_hash",
]

ALGORITHM = "EdDSA"


@dataclass(frozen=True)
class KeyMaterial:
    """A new key pair as stored: its kid and both halves in PEM."""

    kid: str
    private_key_pem: str
    public_key_pem: str


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expire_time: datetime


def generate_key_material() -> KeyMaterial:
    """A fresh Ed25519 key pair, identified by its thumbprint."""
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyMaterial(
        _thumbprint(private_key.public_key()), private_pem.decode(), public_pem.decode()
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _thumbprint(public_key: Ed25519PublicKey) -> str:
    # RFC 7638: SHA-256 of the required JWK members, sorted, without whitespace.
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    return _b64url(hashlib.sha256(json.dumps(jwk, separators=(",", ":")).encode()).digest())


class SigningKeySource(Protocol):
    """The key that signs new tokens now, as (kid, private key); it changes on rotation."""

    def current(self) -> tuple[str, Ed25519PrivateKey]: ...


class TokenMinter:
    """Signs access tokens with the current signing key of its source."""

    def __init__(
        self, keys: SigningKeySource, *, issuer: str, audience: str, ttl: timedelta
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl

    @property
    def ttl(self) -> timedelta:
        """How long a token minted now stays valid."""
        return self._ttl

    def mint(
        self, *, subject: str, organization_id: str, role: Role, now: datetime | None = None
    ) -> IssuedToken:
        """An access token for subject, valid for the configured time from now."""
        issued = (now or datetime.now(UTC)).replace(microsecond=0)
        expires = issued + self._ttl
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "iat": int(issued.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": uuid.uuid4().hex,
            "org": organization_id,
            "role": role.value,
        }
        kid, private_key = self._keys.current()
        token = jwt.encode(claims, private_key, algorithm=ALGORITHM, headers={"kid": kid})
        return IssuedToken(token, expires)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def refresh_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class LocalKeyRing(CachedKeyRing):
    """The KeyRing of auth itself: public keys read from its own database by kid."""

    def __init__(self, db: Database, *, min_refresh_seconds: float = 5.0) -> None:
        super().__init__(lambda: _public_keys(db), min_refresh_seconds=min_refresh_seconds)


def _public_keys(db: Database) -> dict[str, Ed25519PublicKey]:
    with db.read() as session:
        rows = session.execute(select(SigningKey.kid, SigningKey.public_key_pem)).all()
    return verification_keys((kid, pem) for kid, pem in rows)


class LocalServiceTokens:
    """A TokenSource for auth's own calls (to audit): minted here, renewed before expiry."""

    def __init__(self, minter: TokenMinter, *, service_name: str) -> None:
        self._minter = minter
        self._subject = f"{SERVICE_SUBJECT_PREFIX}{service_name}"
        self._current: IssuedToken | None = None
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            renew_after = datetime.now(UTC) + timedelta(seconds=60)
            if self._current is None or self._current.expire_time <= renew_after:
                self._current = self._minter.mint(
                    subject=self._subject, organization_id="", role=Role.SERVICE
                )
            return self._current.token
