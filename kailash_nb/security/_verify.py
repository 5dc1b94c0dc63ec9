"""Token checks that run before and after the signature: shape, header, claim schema,
times. Each refusal is an ``AuthenticationError`` whose message never holds the token.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import jwt
import jwt.exceptions as jwt_errors
from pydantic import ValidationError

from kailash_nb.security._keys import MAX_KID_CHARS
from kailash_nb.security.claims import Claims
from kailash_nb.security.errors import AuthenticationError

__all__ = ["MAX_TOKEN_BYTES", "check_claims", "check_header", "describe", "refuse"]

logger = logging.getLogger("kailash_nb.security.tokens")

#: Longest token accepted; anything larger is refused before any decoding.
MAX_TOKEN_BYTES = 8 * 1024

_LOGGED_KID_CHARS = 32


def refuse(code: str, message: str, kid: object = None) -> AuthenticationError:
    """The error for a refused token, logged at DEBUG with the kid escaped and truncated."""
    if kid is not None:
        shown = repr(kid[:_LOGGED_KID_CHARS]) if isinstance(kid, str) else type(kid).__name__
        logger.debug("token refused (%s): %s; kid=%s", code, message, shown)
    else:
        logger.debug("token refused (%s): %s", code, message)
    return AuthenticationError(code, message)


def check_header(token: object, algorithm: str) -> str:
    """Check the token's shape and header; return its ``kid``.

    Only ``alg``, ``kid`` and ``typ`` are read. ``jku``, ``x5u``, ``jwk`` and ``x5c``
    are ignored, never fetched: keys come from the configured key set only.
    """
    if token is None or token == "":
        raise refuse(
            "token_missing", "no token was presented; send 'Authorization: Bearer <token>'"
        )
    if not isinstance(token, str):
        raise refuse("token_malformed", "a token is a string")
    if len(token) > MAX_TOKEN_BYTES:
        raise refuse("token_malformed", f"the token is larger than {MAX_TOKEN_BYTES} bytes")
    if not token.isascii() or token.count(".") != 2:
        raise refuse("token_malformed", "a token is three base64url segments joined by dots")
    return _header_kid(token, algorithm)


@functools.lru_cache(maxsize=256)
def _header_kid(token: str, algorithm: str) -> str:
    """The checked ``kid`` of a well-shaped token's header.

    The result depends on the token and the algorithm only, and clients present one
    access token many times, so accepted headers are cached (at most 256 tokens of at
    most 8 KiB); refusals raise and are never cached. The signature and claims are
    still verified on every call by the caller.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt_errors.DecodeError:
        raise refuse("token_malformed", "the token is not base64url-encoded JSON") from None
    except jwt_errors.PyJWTError:
        raise refuse(
            "token_invalid",
            "the token header is not acceptable (a critical header extension or a non-string kid)",
        ) from None
    if header.get("alg") != algorithm:
        raise refuse("token_invalid", f"the token's algorithm is not allowed (only {algorithm})")
    if "crit" in header or "b64" in header:
        raise refuse(
            "token_invalid", "the token uses critical header extensions; none are supported"
        )
    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_CHARS:
        raise refuse("token_invalid", "the token's kid is missing or not a short string", kid)
    return kid


def check_claims(
    payload: dict[str, Any],
    *,
    expected_type: str,
    issuer: str | None,
    now: float,
    leeway: int,
    max_lifetime: float,
) -> Claims:
    """Validate the decoded claims against the schema, the issuer and the clock.

    ``exp`` is enforced without leeway; ``nbf``/``iat`` may be ahead of ``now`` by at
    most ``leeway`` seconds; ``exp - iat`` may not exceed ``max_lifetime``.
    """
    # PyJWT already compared iss; comparing again by equality keeps substring and
    # prefix issuers out whatever the library version (CVE-2024-53861).
    if issuer is not None and payload.get("iss") != issuer:
        raise refuse("token_invalid", "the token's issuer is not the expected one")
    try:
        claims = Claims.model_validate(payload)
    except ValidationError as error:
        fields = sorted({str(item["loc"][0]) for item in error.errors() if item["loc"]})
        raise refuse(
            "token_invalid", f"claims {', '.join(fields)} do not have the expected types"
        ) from None
    if claims.token_type != expected_type:
        raise refuse(
            "wrong_token_type",
            f"{_article(claims.token_type)} {claims.token_type} token was presented where "
            f"{_article(expected_type)} {expected_type} token is required",
        )
    if claims.exp <= now:
        raise refuse("token_expired", "the token has expired; refresh it or sign in again")
    if claims.nbf > now + leeway or claims.iat > now + leeway:
        raise refuse("token_invalid", "the token is not valid yet (nbf/iat in the future)")
    if claims.exp - claims.iat > max_lifetime + leeway:
        raise refuse("token_invalid", "the token's lifetime is longer than this service allows")
    return claims


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def describe(error: jwt_errors.PyJWTError) -> str:
    """A message for a PyJWT error that names the problem, never the token."""
    if isinstance(error, jwt_errors.MissingRequiredClaimError):
        return f"the token lacks the required claim {error.claim!r}"
    for kind, message in _MESSAGES:
        if isinstance(error, kind):
            return message
    return "the token is not acceptable"


_MESSAGES: tuple[tuple[type[Exception], str], ...] = (
    (jwt_errors.InvalidSignatureError, "the token's signature does not verify"),
    (jwt_errors.InvalidAlgorithmError, "the token's algorithm is not allowed"),
    (jwt_errors.InvalidIssuerError, "the token's issuer is not the expected one"),
    (jwt_errors.InvalidAudienceError, "the token's audience is not this service"),
    (jwt_errors.ImmatureSignatureError, "the token is not valid yet (nbf/iat in the future)"),
    (jwt_errors.InvalidIssuedAtError, "the token's iat is not an integer"),
    (jwt_errors.InvalidSubjectError, "the token's sub is not a string"),
    (jwt_errors.InvalidJTIError, "the token's jti is not a string"),
    (jwt_errors.InvalidKeyError, "the verification key was refused"),
    (jwt_errors.DecodeError, "the token could not be decoded (a time claim is not an integer?)"),
)
