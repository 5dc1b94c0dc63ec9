"""Typed errors of the security layer.

Every failed token check or login raises :class:`AuthenticationError` with a stable
``code`` a gateway maps to a uniform 401 body. Messages say what was wrong and what to
do; they never contain the token, a password or a secret::

    try:
        claims = tokens.verify_access(bearer)
    except AuthenticationError as error:
        respond(401, {"error": error.code})
"""

from __future__ import annotations

from kailash_nb.sdk_exceptions import KailashException

__all__ = [
    "AUTH_ERROR_CODES",
    "AuthenticationError",
    "ClaimsError",
    "PasswordPolicyError",
    "SecurityConfigurationError",
    "UserExistsError",
]

#: Every ``AuthenticationError.code``, with what it means.
AUTH_ERROR_CODES: dict[str, str] = {
    "token_missing": "no token was presented",
    "token_malformed": "the token is not a well-formed compact JWT of at most 8 KiB",
    "token_invalid": "signature, algorithm, key, header or claims are not acceptable",
    "token_expired": "the token's exp has passed",
    "token_revoked": "the token's session was revoked (logout or refresh-token reuse)",
    "wrong_token_type": "a refresh token where an access token belongs, or the reverse",
    "refresh_disabled": "this service does not issue or accept refresh tokens",
    "invalid_credentials": "the username or the password is wrong (never says which)",
    "second_factor_required": "the password is right but this account also needs a TOTP "
    "code or a backup code",
    "invalid_second_factor": "the TOTP code or backup code is wrong, expired or already used",
}


class AuthenticationError(KailashException):
    """A token or a login was refused.

    Attributes:
        code: one of ``AUTH_ERROR_CODES``; stable, safe to show to the client.
    """

    def __init__(self, code: str, message: str) -> None:
        if code not in AUTH_ERROR_CODES:
            raise ValueError(f"unknown authentication error code {code!r}")
        super().__init__(message)
        self.code = code

    def __repr__(self) -> str:
        return f"AuthenticationError(code={self.code!r}, message={str(self)!r})"


class SecurityConfigurationError(KailashException, ValueError):
    """The security configuration cannot do what was asked (e.g. sign without a private key)."""


class ClaimsError(KailashException, ValueError):
    """Claims passed to mint a token are refused (reserved name, wrong type, too large)."""


class UserExistsError(KailashException, ValueError):
    """A user with the same (case-insensitive) username is already in the store."""


class PasswordPolicyError(KailashException, ValueError):
    """A new password or username does not meet the policy (length, characters)."""
