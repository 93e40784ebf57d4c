"""Keys: opaque prefixed tokens, their hashes, and the per-grant encryption of the Experiture token.

Each grant's Experiture token is sealed with its own random key (AES-256-GCM). That key is stored only wrapped
(AES key wrap) under keys derived from each live token of the grant and from the server secret, so the database
alone, or the database and the secret, decrypt nothing without a live token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

__all__ = ["PREFIXES", "Kind", "Sealed", "ServerKey", "UnsealError", "new_token", "token_hash"]

Kind = Literal["code", "access", "refresh"]
# Prefixed so that secret scanners (and people) recognise them; the secret part has 256 bits.
PREFIXES: dict[Kind, str] = {"code": "exmcp_ac_", "access": "exmcp_at_", "refresh": "exmcp_rt_"}
_NONCE_BYTES = 12


class UnsealError(Exception):
    """The token or the server secret does not open this grant's key (wrong token, rotated secret, tampering)."""


def new_token(kind: Kind) -> str:
    """A fresh opaque token of that kind."""
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256 (tokens have 256 random bits, so no salt or stretching is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Sealed:
    """A grant's Experiture token, encrypted, with the data key wrapped for the token that came with it."""

    ciphertext: bytes  # nonce + AES-GCM output
    wrapped_key: bytes


class ServerKey:
    """The server secret's derived keys: key wrapping salt, and an id that tells which secret sealed a grant."""

    def __init__(self, secret: str) -> None:
        master = secret.encode()
        self._salt = hmac.new(master, b"experiture-mcp/oauth/wrap-salt/v1", hashlib.sha256).digest()
        self.key_id = hmac.new(master, b"experiture-mcp/oauth/key-id/v1", hashlib.sha256).hexdigest()[:16]
        self._lineage = hmac.new(master, b"experiture-mcp/oauth/lineage/v1", hashlib.sha256).digest()

    def lineage(self, client_id: str, upstream_token: str) -> str:
        """A keyed hash of one client and one Experiture token: its new grants continue the same tenant."""
        message = f"{client_id}\n{upstream_token}".encode()
        return hmac.new(self._lineage, message, hashlib.sha256).hexdigest()

    def _kek(self, token: str, kind: Kind) -> bytes:
        info = f"experiture-mcp/dek-wrap/v1/{kind}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=self._salt, info=info).derive(token.encode())

    def seal(self, upstream_token: str, aad: bytes, token: str, kind: Kind) -> Sealed:
        """Encrypt the Experiture token under a new data key, wrapped for `token`."""
        dek = AESGCM.generate_key(bit_length=256)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        ciphertext = nonce + AESGCM(dek).encrypt(nonce, upstream_token.encode(), aad)
        return Sealed(ciphertext, aes_key_wrap(self._kek(token, kind), dek))

    def rewrap(self, wrapped_key: bytes, token: str, kind: Kind, new_token: str, new_kind: Kind) -> bytes:
        """The data key that `token` opens, wrapped again for `new_token` (each token of a grant has its own)."""
        return aes_key_wrap(self._kek(new_token, new_kind), self._unwrap(wrapped_key, token, kind))

    def open(self, ciphertext: bytes, wrapped_key: bytes, aad: bytes, token: str, kind: Kind) -> str:
        """The Experiture token, decrypted with the data key that `token` unwraps."""
        dek = self._unwrap(wrapped_key, token, kind)
        try:
            return AESGCM(dek).decrypt(ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:], aad).decode()
        except Exception as exc:
            raise UnsealError("the grant's sealed token does not decrypt") from exc

    def _unwrap(self, wrapped_key: bytes, token: str, kind: Kind) -> bytes:
        try:
            return aes_key_unwrap(self._kek(token, kind), wrapped_key)
        except InvalidUnwrap as exc:
            raise UnsealError("this token does not unwrap the grant's key") from exc
