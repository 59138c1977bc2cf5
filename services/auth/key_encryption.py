"""The key-encryption key (KEK) that seals auth's private signing keys at rest.

Where it comes from, in order:

- ``LOANSUITE_KEY_ENCRYPTION_KEY``: 32 random bytes in base64url, padding
  optional (43 characters; ``python -c 'import secrets;
  print(secrets.token_urlsafe(32))'`` makes one). Keep it in a secret store, away
  from the database and its backups: that separation is the whole point.
- otherwise ``DATA_DIR/key-encryption-key``, the same format, made 0600 on first
  use. It protects a copied database or a leaked backup, not a stolen data
  directory.

A sealed key is ``aes256gcm:`` and the base64url of a 12-byte random nonce
followed by the AES-256-GCM ciphertext and tag of the private key's PEM. The
key's ``kid`` is the associated data: a sealed key moved to another row does not
open.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.shared.files import write_private_once

__all__ = [
    "KEK_FILE_NAME",
    "KeyEncryptionKey",
    "KeyEncryptionKeyError",
    "is_sealed",
    "load_key_encryption_key",
]

KEK_FILE_NAME: Final = "key-encryption-key"
KEK_VARIABLE: Final = "LOANSUITE_KEY_ENCRYPTION_KEY"
_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12
_SEALED_PREFIX: Final = "aes256gcm:"
_FORMAT: Final = "32 bytes in base64url (43 characters, as secrets.token_urlsafe(32) makes)"


class KeyEncryptionKeyError(ValueError):
    """The key-encryption key is malformed, or a sealed key does not open with it."""


class KeyEncryptionKey:
    """Seals and opens private keys with AES-256-GCM; the kid is associated data."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise KeyEncryptionKeyError(f"a key-encryption key is {_KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def seal(self, kid: str, private_key_pem: str) -> str:
        """The private key's PEM, encrypted and bound to kid."""
        nonce = os.urandom(_NONCE_BYTES)  # random per seal: 2^-32 collision risk after 2^32 keys
        sealed = self._aead.encrypt(nonce, private_key_pem.encode(), kid.encode())
        return _SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def unseal(self, kid: str, sealed: str) -> str:
        """The private key's PEM; a wrong KEK, kid or tampered value is KeyEncryptionKeyError."""
        if not is_sealed(sealed):
            raise KeyEncryptionKeyError(f"signing key {kid} is not sealed")
        try:
            raw = _b64url_decode(sealed.removeprefix(_SEALED_PREFIX))
            pem = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], kid.encode())
        except (ValueError, InvalidTag):
            raise KeyEncryptionKeyError(
                f"signing key {kid} does not open with this key-encryption key "
                f"(is {KEK_VARIABLE} the one it was sealed with?)"
            ) from None
        return pem.decode()


def is_sealed(value: str) -> bool:
    """Whether a stored private key is sealed (plaintext PEM starts with -----BEGIN)."""
    return value.startswith(_SEALED_PREFIX)


def load_key_encryption_key(configured: str, data_dir: Path) -> KeyEncryptionKey:
    """The configured KEK, else the one in the data directory (made on first use)."""
    if configured:
        return KeyEncryptionKey(_parse(configured.strip(), KEK_VARIABLE))
    path = data_dir / KEK_FILE_NAME
    stored = write_private_once(path, secrets.token_urlsafe(_KEY_BYTES).encode())
    return KeyEncryptionKey(_parse(stored.decode(errors="replace").strip(), str(path)))


def _parse(text: str, where: str) -> bytes:
    try:
        key = _b64url_decode(text)
    except ValueError:
        key = b""
    if len(key) != _KEY_BYTES:
        raise KeyEncryptionKeyError(f"{where} must be {_FORMAT}")
    return key


def _b64url_decode(text: str) -> bytes:
    """Strict base64url: any character outside the alphabet is an error, not skipped."""
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None
