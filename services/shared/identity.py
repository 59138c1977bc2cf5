"""Who is calling: bearer tokens verified in-process, users loaded with a short TTL.

Tokens are Ed25519 JWTs from the auth service, verified against its published
public keys by ``kid``. Verified tokens are cached until they expire, so a
caller reusing a token pays for the signature check once. The user's profile
(role, organization, whether still active) comes from auth and is cached for a
few seconds: a deactivated user stops working within that time.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from services.shared.caches import ExpiringCache
from services.shared.errors import UnauthenticatedError

__all__ = [
    "SERVICE_SUBJECT_PREFIX",
    "SPIFFE_PREFIX",
    "Authenticator",
    "CachedKeyRing",
    "Caller",
    "Claims",
    "KeyRing",
    "Role",
    "TokenSource",
    "TokenVerifier",
    "UserDirectory",
    "bearer_token",
    "service_from_spiffe_ids",
    "spiffe_id",
    "verification_keys",
]

SERVICE_SUBJECT_PREFIX = "service:"
# The identity a certificate made by `loansuite certs init` carries in its URI SAN.
SPIFFE_PREFIX = "spiffe://loansuite/"


class Role(enum.StrEnum):
    BORROWER = "BORROWER"
    LENDER = "LENDER"
    ADMIN = "ADMIN"
    SERVICE = "SERVICE"


@dataclass(frozen=True)
class Caller:
    """The authenticated caller as the use cases see it."""

    user_id: str
    organization_id: str
    role: Role
    email: str = ""

    @property
    def is_service(self) -> bool:
        return self.role is Role.SERVICE

    @property
    def service_name(self) -> str:
        """The service a service token names ("loans"); "" for a user."""
        return self.user_id.removeprefix(SERVICE_SUBJECT_PREFIX) if self.is_service else ""


def spiffe_id(name: str) -> str:
    """The SPIFFE id of a service or operator certificate: spiffe://loansuite/<name>."""
    return f"{SPIFFE_PREFIX}{name}"


def service_from_spiffe_ids(ids: Iterable[str]) -> str:
    """The one loansuite name among a certificate's SPIFFE ids; "" if none, or several."""
    names = {i.removeprefix(SPIFFE_PREFIX) for i in ids if i.startswith(SPIFFE_PREFIX)}
    # A certificate naming two holders names none that can be trusted.
    return names.pop() if len(names) == 1 else ""


@dataclass(frozen=True)
class Claims:
    subject: str
    organization_id: str
    role: Role
    expires_at: float


def verification_keys(pems: Iterable[tuple[str, str]]) -> dict[str, Ed25519PublicKey]:
    """Public keys by kid from PEM text; a key of any other type than Ed25519 is left out."""
    keys = {kid: load_pem_public_key(pem.encode()) for kid, pem in pems}
    # Tokens are EdDSA only: a key of another kind could never verify one, so none is kept.
    return {kid: key for kid, key in keys.items() if isinstance(key, Ed25519PublicKey)}


class KeyRing(Protocol):
    """Public keys by kid; ``refresh`` asks the source again (rate-limited by the ring)."""

    def get(self, kid: str) -> Ed25519PublicKey | None: ...

    def refresh(self) -> None: ...


class CachedKeyRing:
    """A KeyRing over a key source, asked lazily and again when an unknown kid shows up.

    Asking again is throttled: a token with a forged kid must not turn every
    call into a query of the source.
    """

    def __init__(
        self, fetch: Callable[[], dict[str, Ed25519PublicKey]], *, min_refresh_seconds: float = 5.0
    ) -> None:
        self._fetch = fetch
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at = float("-inf")
        self._min_refresh = min_refresh_seconds
        self._lock = threading.Lock()

    def get(self, kid: str) -> Ed25519PublicKey | None:
        if not self._keys:
            self.refresh()
        return self._keys.get(kid)

    def refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._fetched_at < self._min_refresh:
                return
            self._keys = self._fetch()
            self._fetched_at = time.monotonic()


class TokenSource(Protocol):
    """Supplies this service's own current access token for calls to other services."""

    def token(self) -> str: ...


class UserDirectory(Protocol):
    """Loads the current profile of a user; raises UnauthenticatedError if gone or inactive."""

    def load(self, user_id: str) -> Caller: ...

    def cached(self, user_id: str) -> bool:
        """Whether load would answer without asking anyone."""
        ...


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The token of "authorization: Bearer <token>", or UnauthenticatedError."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            raise UnauthenticatedError(
                "authorization must be 'Bearer <token>'", reason="TOKEN_MALFORMED"
            )
    raise UnauthenticatedError("authorization metadata is missing", reason="TOKEN_MISSING")


_JWT_FAILURES: tuple[tuple[type[Exception], str, str], ...] = (
    (jwt.ExpiredSignatureError, "TOKEN_EXPIRED", "the token has expired"),
    (jwt.InvalidAudienceError, "TOKEN_WRONG_AUDIENCE", "the token is not for this service"),
    (jwt.InvalidIssuerError, "TOKEN_WRONG_ISSUER", "the token was not issued by auth"),
    (jwt.InvalidSignatureError, "TOKEN_BAD_SIGNATURE", "the token's signature is invalid"),
    (jwt.MissingRequiredClaimError, "TOKEN_MALFORMED", "the token lacks a required claim"),
    (jwt.DecodeError, "TOKEN_MALFORMED", "the token cannot be decoded"),
)


class TokenVerifier:
    """Verifies access tokens against a key ring, caching each verified token until expiry."""

    def __init__(
        self,
        keys: KeyRing,
        *,
        issuer: str,
        audience: str,
        cache_size: int = 50_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._clock = clock
        # Bounded; an entry expires with its token.
        self._verified: ExpiringCache[str, Claims] = ExpiringCache(cache_size, clock=clock)

    def verify(self, token: str) -> Claims:
        claims = self._verified.get(token)
        if claims is not None:
            return claims
        claims = self._decode(token)
        self._verified.put(token, claims, expires_at=claims.expires_at)
        return claims

    def cached(self, token: str) -> Claims | None:
        """The claims of a token verified before and not yet expired; None otherwise."""
        return self._verified.get(token)

    def _decode(self, token: str) -> Claims:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._key(kid) if isinstance(kid, str) else None
            if key is None:
                raise UnauthenticatedError(
                    "the token's signing key is unknown", reason="TOKEN_UNKNOWN_KEY"
                )
            payload = jwt.decode(
                token,
                key,
                algorithms=["EdDSA"],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "iat", "sub", "iss", "aud", "role"]},
                leeway=5,
            )
            return Claims(
                subject=str(payload["sub"]),
                organization_id=str(payload.get("org", "")),
                role=Role(payload["role"]),
                expires_at=float(payload["exp"]),
            )
        except UnauthenticatedError:
            raise
        except (jwt.InvalidTokenError, ValueError, KeyError) as exc:
            raise _unauthenticated(exc) from None

    def _key(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.get(kid)
        if key is None:  # perhaps rotated since we last asked
            self._keys.refresh()
            key = self._keys.get(kid)
        return key


def _unauthenticated(exc: Exception) -> UnauthenticatedError:
    for kind, reason, message in _JWT_FAILURES:
        if isinstance(exc, kind):
            return UnauthenticatedError(message, reason=reason)
    return UnauthenticatedError("the token is invalid", reason="TOKEN_INVALID")


class Authenticator:
    """Step 1 and 2 of every call: verify the bearer token, then load the current user."""

    def __init__(self, verifier: TokenVerifier, users: UserDirectory) -> None:
        self._verifier = verifier
        self._users = users

    def authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Caller:
        claims = self._verifier.verify(bearer_token(metadata))
        if claims.role is Role.SERVICE:
            return Caller(user_id=claims.subject, organization_id="", role=Role.SERVICE)
        return self._users.load(claims.subject)

    def answers_at_once(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> bool:
        """Whether authenticate would answer from its caches (or refuse) without a call to
        auth or a signature to check: what a call must know to run on an event loop."""
        try:
            claims = self._verifier.cached(bearer_token(metadata))
        except UnauthenticatedError:
            return True  # no bearer token: refused at once
        if claims is None:
            return False
        return claims.role is Role.SERVICE or self._users.cached(claims.subject)
