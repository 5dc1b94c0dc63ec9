"""Signing and verification keys: PEM parsing, key ids and JWKS documents.

A ``kid`` is an opaque, bounded string: it is only ever a dictionary key. It is never
a path, a query parameter or a URL.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "MAX_KID_CHARS",
    "fetch_jwks",
    "load_private_key",
    "load_public_key",
    "parse_jwks",
    "public_key_id",
    "secret_key_id",
]


MAX_KID_CHARS = 128
MIN_RSA_BITS = 2048
MAX_JWKS_BYTES = 64 * 1024
MAX_JWKS_KEYS = 64
JWKS_TIMEOUT_SECONDS = 5.0


def load_private_key(pem: str, algorithm: str) -> Any:
    """Parse an unencrypted PEM private key and check it suits ``algorithm``.

    Raises:
        ValueError: not a PEM private key, encrypted, or the wrong kind/size of key.
    """
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        raise ValueError("the private key PEM is encrypted; pass it decrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("jwt_private_key is not a PEM private key") from None
    _check_key_kind(key.public_key(), algorithm, "jwt_private_key")
    return key


def load_public_key(pem: str, algorithm: str, field: str = "jwt_public_key") -> Any:
    """Parse a PEM public key and check it suits ``algorithm``.

    Raises:
        ValueError: not a PEM public key, or the wrong kind/size of key.
    """
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(f"{field} is not a PEM public key") from None
    _check_key_kind(key, algorithm, field)
    return key


def _check_key_kind(public_key: Any, algorithm: str, field: str) -> None:
    if algorithm == "RS256":
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError(f"{field} must be an RSA key for RS256")
        if public_key.key_size < MIN_RSA_BITS:
            raise ValueError(f"{field} must be an RSA key of at least {MIN_RSA_BITS} bits")
    elif algorithm == "ES256":
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
            public_key.curve, ec.SECP256R1
        ):
            raise ValueError(f"{field} must be an EC P-256 key for ES256")
    else:
        raise ValueError(f"{field} is for RS256/ES256; HS256 uses jwt_secret")


def public_key_id(public_key: Any) -> str:
    """A stable key id: the first 16 base64url characters of the SHA-256 of the SPKI DER."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode()[:16]


def secret_key_id(secret: bytes) -> str:
    """A stable key id for an HMAC secret (a domain-separated hash, not the secret)."""
    digest = hashlib.sha256(b"kailash_nb jwt key id\x00" + secret).digest()
    return base64.urlsafe_b64encode(digest).decode()[:16]


def fetch_jwks(url: str) -> bytes:
    """Download a JWKS document: no redirects, 5 s timeout, at most 64 KiB.

    Raises:
        httpx.HTTPError: transport failure or non-2xx status.
        ValueError: the document is larger than 64 KiB.
    """
    import httpx

    body = bytearray()
    with (
        httpx.Client(timeout=JWKS_TIMEOUT_SECONDS, follow_redirects=False) as client,
        client.stream("GET", url, headers={"Accept": "application/json"}) as response,
    ):
        response.raise_for_status()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError(f"the JWKS document is larger than {MAX_JWKS_BYTES} bytes")
    return bytes(body)


def parse_jwks(document: bytes, algorithm: str) -> dict[str, Any]:
    """The public keys of a JWKS document usable with ``algorithm``, by ``kid``.

    Entries without a string ``kid``, with ``use`` other than ``sig``, another ``alg``,
    private parameters, or a key of the wrong kind are skipped.

    Raises:
        ValueError: the document is not a JSON object with a ``keys`` list.
    """
    data = json.loads(document)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("a JWKS document is a JSON object with a 'keys' list")
    keys: dict[str, Any] = {}
    for entry in data["keys"][:MAX_JWKS_KEYS]:
        if not isinstance(entry, dict) or "d" in entry:
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_CHARS:
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", algorithm) != algorithm:
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=algorithm).key
            _check_key_kind(key, algorithm, "JWKS key")
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
        keys[kid] = key
    return keys
