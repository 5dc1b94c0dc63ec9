"""The key set a token's ``kid`` is looked up in.

An unknown ``kid`` costs no I/O unless a ``jwks_url`` is configured, and then at most
one JWKS download per cooldown.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kailash_nb.security._keys import fetch_jwks, load_private_key, load_public_key, parse_jwks
from kailash_nb.security.config import SecurityConfig
from kailash_nb.security.errors import SecurityConfigurationError

__all__ = ["KeySet"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Key:
    key: Any
    accept_until: float | None = None


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
