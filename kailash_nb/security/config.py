"""``SecurityConfig``: how tokens are signed, verified and how long they live.

Defaults are the production-safe ones; the only required value is the key. An HS256
secret must be at least 32 bytes; a shorter, empty or missing one is refused unless
``development_mode=True`` (which generates a throwaway secret when none is given)::

    config = SecurityConfig(jwt_secret=os.environ["KAILASH_NB_JWT_SECRET"],
                            issuer="https://auth.example.com", audience="kailash-api")
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from kailash_nb.security._keys import (
    MAX_KID_CHARS,
    load_private_key,
    load_public_key,
    public_key_id,
    secret_key_id,
)

__all__ = ["MIN_HS_SECRET_BYTES", "JWTAlgorithm", "RetiredKey", "SecurityConfig"]

logger = logging.getLogger(__name__)

#: Shortest HS256 secret accepted outside development mode (RFC 7518 §3.2).
MIN_HS_SECRET_BYTES = 32

#: The signing algorithms kailash_nb issues and accepts; exactly one per deployment.
JWTAlgorithm = Literal["HS256", "RS256", "ES256"]

_KID = Field(min_length=1, max_length=MAX_KID_CHARS, pattern=r"^[\x21-\x7e]+$")


class RetiredKey(BaseModel):
    """A key that signed tokens before a rotation, still accepted for verification until
    ``accept_until`` (the end of the grace window); never used to sign.

    Give ``secret`` for HS256 deployments, ``public_key`` (PEM) for RS256/ES256.
    """

    # Errors never echo the input: it holds secrets.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    kid: str = _KID
    """The ``kid`` header of the tokens this key signed."""
    secret: SecretStr | None = None
    """The previous HS256 secret."""
    public_key: str | None = None
    """The previous RS256/ES256 public key, PEM."""
    accept_until: datetime
    """End of the grace window (timezone-aware); after it the key's tokens are refused."""

    @field_validator("accept_until")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("accept_until must be timezone-aware, e.g. datetime.now(UTC)")
        return value


class SecurityConfig(BaseModel):
    """Token signing, verification and lifetime settings, validated on creation.

    Raises:
        pydantic.ValidationError: a missing/short secret (outside development mode), a
            key that does not match ``jwt_algorithm``, an unknown algorithm (``none``
            included), a non-https ``jwks_url``, or inconsistent lifetimes.
    """

    # Errors never echo the input: it holds secrets.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 signing secret, at least 32 bytes (UTF-8). No default: None "
        "means unset, which is refused unless development_mode generates a throwaway one.",
    )
    jwt_algorithm: JWTAlgorithm = Field(
        default="HS256",
        description="The one algorithm tokens are signed and verified with; tokens naming "
        "any other (including 'none') are refused.",
    )
    jwt_private_key: SecretStr | None = Field(
        default=None,
        description="RS256/ES256 private key, unencrypted PEM; needed to issue tokens.",
    )
    jwt_public_key: str | None = Field(
        default=None,
        description="RS256/ES256 public key, PEM; derived from jwt_private_key when omitted "
        "(a verify-only service gives just this one, or jwks_url).",
    )
    jwt_key_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_KID_CHARS,
        pattern=r"^[\x21-\x7e]+$",
        description="The kid header of issued tokens; default: derived from the key.",
    )
    previous_keys: tuple[RetiredKey, ...] = Field(
        default=(),
        description="Keys retired by a rotation, accepted for verification until each "
        "one's accept_until.",
    )
    jwks_url: str | None = Field(
        default=None,
        description="https URL of a JWKS document with further RS256/ES256 verification "
        "keys; fetched only for an unknown kid, at most once per jwks_refresh_cooldown.",
    )
    jwks_refresh_cooldown: float = Field(
        default=300.0,
        ge=1.0,
        description="Minimum seconds between two JWKS downloads.",
    )
    issuer: str | None = Field(
        default=None,
        min_length=1,
        description="Value of the iss claim minted and required (exact match) when set.",
    )
    audience: str | None = Field(
        default=None,
        min_length=1,
        description="Value of the aud claim minted and required when set; a token with an "
        "aud is refused when this is unset.",
    )
    access_token_ttl: timedelta = Field(
        default=timedelta(minutes=15),
        description="Lifetime of access tokens (at most 24 h): the longest a removed role "
        "or revoked session may keep working with a stateless check.",
    )
    refresh_token_ttl: timedelta = Field(
        default=timedelta(hours=8),
        description="Lifetime of a session: refresh tokens rotate but never outlive the "
        "first one's expiry (at most 90 days, longer than access_token_ttl).",
    )
    leeway: int = Field(
        default=10,
        ge=0,
        le=120,
        description="Seconds of clock skew forgiven for nbf/iat in the future; exp is "
        "enforced without leeway.",
    )
    enable_rate_limiting: bool = Field(
        default=True,
        description="Whether the gateway rate-limits requests (enforced by the gateway).",
    )
    max_requests_per_minute: int = Field(
        default=600,
        ge=1,
        description="Per-client request budget per minute when rate limiting is on.",
    )
    login_max_failures: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Failed sign-ins one account (username) may have within "
        "login_failure_window; further attempts answer 429 until the lock ends (AUTH-26).",
    )
    login_max_failures_per_ip: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Failed sign-ins one client address may have within "
        "login_failure_window, whatever the usernames; then 429 the same way.",
    )
    login_failure_window: timedelta = Field(
        default=timedelta(minutes=15),
        description="Window in which failed sign-ins are counted (1 s to 24 h).",
    )
    login_lockout: timedelta = Field(
        default=timedelta(minutes=5),
        description="Length of the first lock; each further lock in a row doubles it, up "
        "to login_max_lockout. A successful sign-in resets the account's count.",
    )
    login_max_lockout: timedelta = Field(
        default=timedelta(hours=1),
        description="Longest lock (at least login_lockout, at most 24 h).",
    )
    totp_max_failures: int = Field(
        default=6,
        ge=1,
        le=100,
        description="Wrong TOTP or backup codes one account may give within "
        "totp_failure_window before its sign-ins answer 429 (AUTH-30).",
    )
    totp_failure_window: timedelta = Field(
        default=timedelta(minutes=5),
        description="Window in which wrong second-factor codes are counted (1 s to 24 h).",
    )
    totp_issuer: str = Field(
        default="kailash_nb",
        min_length=1,
        max_length=64,
        pattern=r"^[^:]+$",
        description="Issuer name shown by authenticator apps for TOTP enrollments.",
    )
    development_mode: bool = Field(
        default=False,
        description="Allow short HS256 secrets and http jwks_url, and generate a throwaway "
        "secret when none is given. Never in production.",
    )

    @model_validator(mode="before")
    @classmethod
    def _development_secret(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and data.get("development_mode") is True
            and data.get("jwt_algorithm", "HS256") == "HS256"
            and data.get("jwt_secret") is None
        ):
            logger.warning(
                "development_mode: generated a throwaway jwt_secret; tokens will not survive "
                "a restart and each process signs with its own secret"
            )
            data = {**data, "jwt_secret": secrets.token_urlsafe(48)}
        return data

    @model_validator(mode="after")
    def _check(self) -> SecurityConfig:
        if self.jwt_algorithm == "HS256":
            self._check_hmac_keys()
        else:
            self._check_asymmetric_keys()
        self._check_previous_keys()
        self._check_jwks_url()
        self._check_lifetimes()
        self._check_login_limits()
        return self

    @property
    def key_id(self) -> str:
        """The ``kid`` of tokens this configuration issues."""
        if self.jwt_key_id is not None:
            return self.jwt_key_id
        if self.jwt_secret is not None:
            return secret_key_id(self.jwt_secret.get_secret_value().encode())
        if self.jwt_private_key is not None:
            key = load_private_key(self.jwt_private_key.get_secret_value(), self.jwt_algorithm)
            return public_key_id(key.public_key())
        if self.jwt_public_key is not None:
            return public_key_id(load_public_key(self.jwt_public_key, self.jwt_algorithm))
        return "jwks"

    def _check_hmac_keys(self) -> None:
        if self.jwt_private_key is not None or self.jwt_public_key is not None:
            raise ValueError(
                "jwt_private_key/jwt_public_key are for RS256/ES256; HS256 signs with "
                "jwt_secret (or set jwt_algorithm)"
            )
        if self.jwks_url is not None:
            raise ValueError("jwks_url publishes RS256/ES256 keys; HS256 cannot use it")
        if self.jwt_secret is None:
            raise ValueError(
                "jwt_secret is required for HS256: use at least 32 random bytes, e.g. "
                "secrets.token_urlsafe(48) (development_mode=True generates a throwaway one)"
            )
        _check_secret(self.jwt_secret, "jwt_secret", self.development_mode)

    def _check_asymmetric_keys(self) -> None:
        if self.jwt_secret is not None:
            raise ValueError(
                f"jwt_secret is for HS256; {self.jwt_algorithm} signs with jwt_private_key "
                "and verifies with jwt_public_key"
            )
        if self.jwt_private_key is None and self.jwt_public_key is None and not self.jwks_url:
            raise ValueError(
                f"{self.jwt_algorithm} needs jwt_private_key (to issue) or jwt_public_key / "
                "jwks_url (to verify)"
            )
        private = public = None
        if self.jwt_private_key is not None:
            private = load_private_key(self.jwt_private_key.get_secret_value(), self.jwt_algorithm)
        if self.jwt_public_key is not None:
            public = load_public_key(self.jwt_public_key, self.jwt_algorithm)
        if (
            private is not None
            and public is not None
            and public_key_id(public) != public_key_id(private.public_key())
        ):
            raise ValueError("jwt_public_key is not the public half of jwt_private_key")

    def _check_previous_keys(self) -> None:
        seen = {self.key_id}
        for retired in self.previous_keys:
            if retired.kid in seen:
                raise ValueError(f"previous_keys: kid {retired.kid!r} is used twice")
            seen.add(retired.kid)
            if self.jwt_algorithm == "HS256":
                if retired.secret is None or retired.public_key is not None:
                    raise ValueError(f"previous_keys {retired.kid!r}: HS256 keys give a secret")
                _check_secret(retired.secret, "previous_keys secret", self.development_mode)
            else:
                if retired.public_key is None or retired.secret is not None:
                    raise ValueError(
                        f"previous_keys {retired.kid!r}: {self.jwt_algorithm} keys give a "
                        "public_key (PEM)"
                    )
                load_public_key(retired.public_key, self.jwt_algorithm, "previous_keys public_key")

    def _check_jwks_url(self) -> None:
        if self.jwks_url is None:
            return
        parts = urlsplit(self.jwks_url)
        allowed = ("https", "http") if self.development_mode else ("https",)
        if parts.scheme not in allowed or not parts.hostname:
            raise ValueError("jwks_url must be an https:// URL")

    def _check_lifetimes(self) -> None:
        access, refresh = self.access_token_ttl, self.refresh_token_ttl
        if not timedelta(seconds=1) <= access <= timedelta(hours=24):
            raise ValueError("access_token_ttl must be between 1 second and 24 hours")
        if not access < refresh <= timedelta(days=90):
            raise ValueError(
                "refresh_token_ttl must be longer than access_token_ttl and at most 90 days"
            )

    def _check_login_limits(self) -> None:
        for name in ("login_failure_window", "totp_failure_window", "login_lockout"):
            if not timedelta(seconds=1) <= getattr(self, name) <= timedelta(hours=24):
                raise ValueError(f"{name} must be between 1 second and 24 hours")
        if not self.login_lockout <= self.login_max_lockout <= timedelta(hours=24):
            raise ValueError(
                "login_max_lockout must be at least login_lockout and at most 24 hours"
            )


def _check_secret(secret: SecretStr, field: str, development_mode: bool) -> None:
    size = len(secret.get_secret_value().encode())
    if size == 0:
        raise ValueError(f"{field} is empty")
    if size < MIN_HS_SECRET_BYTES:
        if not development_mode:
            raise ValueError(
                f"{field} is {size} bytes; HS256 needs at least {MIN_HS_SECRET_BYTES} random "
                "bytes, e.g. secrets.token_urlsafe(48)"
            )
        logger.warning("development_mode: accepting a %d-byte %s", size, field)
