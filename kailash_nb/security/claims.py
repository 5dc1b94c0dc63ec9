"""What a verified token says (``Claims``) and what ``issue``/``refresh`` return
(``TokenPair``).

Claims are schema-validated in strict mode: ``sub`` and ``tenant_id`` are non-empty
strings, ``roles`` a list of strings, times are integers; an ``int`` subject, a
``"admin"`` role string or a list tenant is refused rather than coerced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kailash_nb.security.errors import ClaimsError

__all__ = ["RESERVED_CLAIMS", "Claims", "TokenPair", "check_identifier", "check_roles"]

MAX_ID_CHARS = 256
MAX_ROLES = 256
MAX_ROLE_CHARS = 128

#: Claims set by the token service only; ``extra`` passed to ``issue`` may not name them.
RESERVED_CLAIMS = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "token_type",
        "tenant_id",
        "roles",
        "family",
    }
)

_ID = Field(min_length=1, max_length=MAX_ID_CHARS)


_Role = Annotated[str, Field(min_length=1, max_length=MAX_ROLE_CHARS)]


class Claims(BaseModel):
    """The validated claims of a token.

    Claims other than the named ones (from ``extra`` at issue time) are in ``extra``.
    """

    model_config = ConfigDict(frozen=True, strict=True, extra="allow")

    sub: str = _ID
    """The subject: the user or service the token was issued to."""
    tenant_id: str = _ID
    """The tenant the subject acts in; the only source of tenant for a request."""
    roles: list[_Role] = Field(max_length=MAX_ROLES)
    """The subject's roles when the token was minted."""
    token_type: Literal["access", "refresh"]
    """``access`` for API calls, ``refresh`` for the refresh endpoint only."""
    jti: str = Field(min_length=1, max_length=128)
    """Unique id of this token."""
    family: str = Field(min_length=1, max_length=128)
    """The session: every token minted from one login shares it; revoking it ends them all."""
    iat: int
    """Issued at (seconds since the epoch)."""
    nbf: int
    """Not valid before (seconds since the epoch)."""
    exp: int
    """Expires at (seconds since the epoch)."""
    iss: str | None = None
    """Issuer, when the service is configured with one."""
    aud: str | list[str] | None = None
    """Audience, when the service is configured with one."""

    @property
    def extra(self) -> dict[str, Any]:
        """The non-reserved claims the token was issued with."""
        return dict(self.model_extra or {})


@dataclass(frozen=True)
class TokenPair:
    """Tokens handed to a client after login or refresh.

    The tokens themselves are left out of ``repr`` so they never land in a log by accident.
    """

    access_token: str = field(repr=False)
    """Bearer token for API calls."""
    refresh_token: str | None = field(repr=False)
    """Single-use token for the refresh endpoint; ``None`` when refresh is disabled."""
    session_id: str
    """The token family; pass it to ``revoke_session`` to log the session out."""
    expires_in: int
    """Seconds until the access token expires."""
    refresh_expires_in: int | None
    """Seconds until the refresh token (the session) expires."""
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret
    """How to present the access token (``Authorization: Bearer <token>``)."""


def check_identifier(value: object, name: str) -> str:
    """``value`` if it is a non-empty string of at most 256 chars (a subject, tenant or
    session id).

    Raises:
        ClaimsError: anything else.
    """
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise ClaimsError(f"{name} must be a non-empty string of at most {MAX_ID_CHARS} chars")
    return value


def check_roles(roles: object) -> list[str]:
    """``roles`` as a list if it is a collection of role names (not one string).

    Raises:
        ClaimsError: a string, a non-iterable, too many roles or a non-string role.
    """
    if isinstance(roles, (str, bytes)) or not isinstance(roles, Iterable):
        raise ClaimsError("roles must be a list of role names, e.g. ['analyst'], not one string")
    role_list = list(roles)
    if len(role_list) > MAX_ROLES or not all(
        isinstance(role, str) and 0 < len(role) <= MAX_ROLE_CHARS for role in role_list
    ):
        raise ClaimsError(
            f"roles must be at most {MAX_ROLES} non-empty strings of at most {MAX_ROLE_CHARS} chars"
        )
    return role_list
