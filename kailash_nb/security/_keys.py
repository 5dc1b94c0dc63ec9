"""Signing and verification keys: PEM parsing, key ids, and the key set a token's ``kid``
is looked up in.

A ``kid`` is an opaque, bounded string: it is only ever a dictionary key here. It is
never a path, a query parameter or a URL, and an unknown ``kid`` costs no I/O unless a
``jwks_url`` is configured, and then at most one JWKS download per cooldown.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kailash_nb.security.errors import SecurityConfigurationError

if TYPE_CHECKING:
    from kailash_nb.security.config import SecurityConfig

__all__ = [
    "MAX_KID_CHARS",
    "KeySet",
    "fetch_jwks",
    "load_private_key",
    "load_public_key",
    "parse_jwks",
    "public_key_id",
    "secret_key_id",
]

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class _Key:
    key: Any
    accept_until: float | None = None


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


class KeySet:
    """The keys tokens are signed with and verified against, by ``kid``.

    Holds the current key, the retired keys of ``config.previous_keys`` (each accepted
    until its ``accept_until``) and, with ``config.jwks_url``, the keys published there,
    downloaded at most once per ``config.jwks_refresh_cooldown`` seconds however many
    unknown kids arrive.

    Args:
        config: the validated security configuration.
        clock: seconds since the epoch (``time.time``).
        fetch: downloads the JWKS document at a URL (default: :func:`fetch_jwks`).
    """

    def __init__(
        self,
        config: SecurityConfig,
        *,
        clock: Callable[[], float],
        fetch: Callable[[str], bytes] | None = None,
    ) -> None:
        self.algorithm = config.jwt_algorithm
        self.key_id = config.key_id
        self._clock = clock
        self._fetch = fetch or fetch_jwks
        self._jwks_url = config.jwks_url
        self._cooldown = config.jwks_refresh_cooldown
        self._jwks: dict[str, Any] = {}
        self._jwks_loaded_at: float | None = None
        self._lock = threading.Lock()
        self._signing_key: Any = None
        self._static: dict[str, _Key] = {}
        if self.algorithm == "HS256":
            if config.jwt_secret is not None:
                self._signing_key = config.jwt_secret.get_secret_value().encode()
                self._static[self.key_id] = _Key(self._signing_key)
        else:
            public = None
            if config.jwt_private_key is not None:
                self._signing_key = load_private_key(
                    config.jwt_private_key.get_secret_value(), self.algorithm
                )
                public = self._signing_key.public_key()
            if config.jwt_public_key is not None:
                public = load_public_key(config.jwt_public_key, self.algorithm)
            if public is not None:
                self._static[self.key_id] = _Key(public)
        for retired in config.previous_keys:
            if retired.secret is not None:
                key: Any = retired.secret.get_secret_value().encode()
            else:
                key = load_public_key(retired.public_key or "", self.algorithm, "public_key")
            self._static[retired.kid] = _Key(key, retired.accept_until.timestamp())

    def signing_key(self) -> tuple[str, Any]:
        """``(kid, key)`` to sign new tokens with.

        Raises:
            SecurityConfigurationError: only verification keys are configured.
        """
        if self._signing_key is None:
            raise SecurityConfigurationError(
                f"this configuration can only verify tokens: set jwt_private_key to sign "
                f"{self.algorithm} tokens"
            )
        return self.key_id, self._signing_key

    def verification_key(self, kid: str) -> Any | None:
        """The key for ``kid``, or ``None`` if it is unknown or past its grace window."""
        entry = self._static.get(kid)
        if entry is not None:
            if entry.accept_until is not None and self._clock() > entry.accept_until:
                return None
            return entry.key
        if self._jwks_url is None:
            return None
        key = self._jwks.get(kid)
        if key is None and self._reload_jwks():
            key = self._jwks.get(kid)
        return key

    def _reload_jwks(self) -> bool:
        # One download per cooldown, whoever asks: a flood of unknown kids costs
        # nothing beyond the first.
        with self._lock:
            now = self._clock()
            loaded_at = self._jwks_loaded_at
            if loaded_at is not None and now - loaded_at < self._cooldown:
                return False
            self._jwks_loaded_at = now
            try:
                self._jwks = parse_jwks(self._fetch(self._jwks_url or ""), self.algorithm)
            except Exception as error:
                logger.warning(
                    "could not load the JWKS document (%s); keeping %d known keys",
                    type(error).__name__,
                    len(self._jwks),
                )
                return False
            return True
