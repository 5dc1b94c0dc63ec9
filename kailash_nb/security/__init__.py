"""Security primitives: configuration, JWT tokens, password hashing and users.

Framework-free; the gateway builds on them::

    from kailash_nb.security import SecurityConfig, TokenService, UserStore

    config = SecurityConfig(jwt_secret=secret)          # >= 32 bytes
    tokens = TokenService(config, "sqlite:///auth.db")
    users = UserStore("sqlite:///auth.db")
"""

from __future__ import annotations

from kailash_nb.security._state import REVOCATION_CACHE_SECONDS, AuthEvent, AuthState
from kailash_nb.security.claims import RESERVED_CLAIMS, Claims, TokenPair
from kailash_nb.security.config import JWTAlgorithm, RetiredKey, SecurityConfig
from kailash_nb.security.errors import (
    AUTH_ERROR_CODES,
    AuthenticationError,
    ClaimsError,
    PasswordPolicyError,
    SecurityConfigurationError,
    UserExistsError,
)
from kailash_nb.security.lockout import LoginLockedError
from kailash_nb.security.passwords import User, UserStore, hash_password, verify_password
from kailash_nb.security.tokens import MAX_TOKEN_BYTES, TokenService
from kailash_nb.security.totp import SecondFactorError, TotpEnrollment

__all__ = [
    "AUTH_ERROR_CODES",
    "MAX_TOKEN_BYTES",
    "RESERVED_CLAIMS",
    "REVOCATION_CACHE_SECONDS",
    "AuthEvent",
    "AuthState",
    "AuthenticationError",
    "Claims",
    "ClaimsError",
    "JWTAlgorithm",
    "LoginLockedError",
    "PasswordPolicyError",
    "RetiredKey",
    "SecondFactorError",
    "SecurityConfig",
    "SecurityConfigurationError",
    "TokenPair",
    "TokenService",
    "TotpEnrollment",
    "User",
    "UserExistsError",
    "UserStore",
    "hash_password",
    "verify_password",
]
