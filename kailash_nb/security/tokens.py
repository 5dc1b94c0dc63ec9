"""``TokenService``: issue, verify, rotate and revoke JWT access/refresh tokens.

One algorithm per deployment (``SecurityConfig.jwt_algorithm``), keys looked up by
``kid`` in the configured key set only, claims schema-validated, refresh tokens single
use with reuse detection, and the revocation state in the store so it holds across
processes::

    tokens = TokenService(SecurityConfig(jwt_secret=secret), "sqlite:///auth.db")
    pair = tokens.issue("user-42", tenant_id="acme", roles=["analyst"])
    claims = tokens.verify_access(pair.access_token)       # -> Claims
    pair = tokens.refresh(pair.refresh_token)              # rotates; old one is now used

Every refusal raises ``AuthenticationError`` with a stable ``code``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jwt
import jwt.exceptions as jwt_errors

from kailash_nb.security._key_set import KeySet
from kailash_nb.security._state import REVOCATION_CACHE_SECONDS, AuthEvent, AuthState
from kailash_nb.security._verified_cache import VerifiedTokenCache
from kailash_nb.security._verify import (
    MAX_TOKEN_BYTES,
    check_claims,
    check_header,
    describe,
    refuse,
)
from kailash_nb.security.claims import (
    RESERVED_CLAIMS,
    Claims,
    TokenPair,
    check_identifier,
    check_roles,
)
from kailash_nb.security.config import SecurityConfig
from kailash_nb.security.errors import AuthenticationError, ClaimsError

__all__ = ["MAX_TOKEN_BYTES", "TokenService"]

logger = logging.getLogger(__name__)


class TokenService:
    """Issues and checks the tokens of one deployment.

    Args:
        config: keys, algorithm, issuer/audience and lifetimes.
        store_url: database for used refresh tokens, revoked sessions and audit events;
            ``None`` uses ``KAILASH_NB_DATABASE_URL`` or the default SQLite file.
        refresh_tokens: issue refresh tokens and accept them at ``refresh``.
        check_sessions: ``verify_access`` also refuses tokens of revoked sessions:
            logout takes effect at once instead of at the access token's expiry. A
            "not revoked" answer is reused for at most ``revocation_cache_seconds``
            (an in-process LRU cache): revocations through this service take effect
            at once, revocations by another process or another ``TokenService`` on the
            same store within that bound. ``verify_refresh`` and ``refresh`` always
            read the store.
        audit: record ``tokens_issued``, ``tokens_refreshed``, ``session_revoked`` and
            ``refresh_reuse_detected`` events in the store.
        clock: seconds since the epoch; tests pin it.
        jwks_fetcher: downloads ``config.jwks_url`` (default: httpx, 5 s, 64 KiB cap).
        revocation_cache_seconds: the revocation propagation bound across processes,
            at most 1 s (the default); ``0`` reads the store on every ``verify_access``.

    Raises:
        StoreConfigurationError: bad store URL or a newer schema.
    """

    def __init__(
        self,
        config: SecurityConfig,
        store_url: str | None = None,
        *,
        refresh_tokens: bool = True,
        check_sessions: bool = True,
        audit: bool = True,
        clock: Callable[[], float] = time.time,
        jwks_fetcher: Callable[[str], bytes] | None = None,
        revocation_cache_seconds: float = REVOCATION_CACHE_SECONDS,
    ) -> None:
        if not isinstance(config, SecurityConfig):
            raise TypeError(f"config must be a SecurityConfig, got {type(config).__name__}")
        self.config = config
        self.refresh_tokens = refresh_tokens
        self.check_sessions = check_sessions
        self.audit = audit
        self._clock = clock
        self._keys = KeySet(config, clock=clock, fetch=jwks_fetcher)
        self._state = AuthState(
            store_url, clock=clock, revocation_cache_seconds=revocation_cache_seconds
        )
        #: Access tokens verified within the revocation bound (see ``_verified_cache``).
        self._verified = VerifiedTokenCache(min(revocation_cache_seconds, 1.0), clock=clock)
        self._jwt = jwt.PyJWT({"enforce_minimum_key_length": not config.development_mode})
        self._required = [*_REQUIRED_CLAIMS]
        if config.issuer is not None:
            self._required.append("iss")
        if config.audience is not None:
            self._required.append("aud")

    # -- minting -------------------------------------------------------------------

    def issue(
        self,
        subject: str,
        *,
        tenant_id: str,
        roles: Iterable[str],
        extra: Mapping[str, Any] | None = None,
    ) -> TokenPair:
        """Mint an access token (and a refresh token) for a new session.

        Args:
            subject: the user or service id (``sub``).
            tenant_id: the tenant the subject acts in.
            roles: role names (a list, not one string).
            extra: further claims; may not name a reserved claim (``sub``, ``exp``,
                ``roles``, ``tenant_id``, ``token_type``, ...), must be JSON.

        Raises:
            ClaimsError: a reserved or non-JSON extra claim, a bad subject, tenant or roles,
                or a token that would exceed 8 KiB.
            SecurityConfigurationError: the configuration has no signing key.
        """
        sub = check_identifier(subject, "subject")
        tenant = check_identifier(tenant_id, "tenant_id")
        role_list = check_roles(roles)
        claims = _extra_claims(extra)
        now = int(self._clock())
        family = uuid.uuid4().hex
        session_end = now + self._ttl("refresh")
        pair = self._mint(sub, tenant, role_list, claims, family, now, session_end)
        self._state.record_session(family, subject=sub, tenant_id=tenant, expires_at=session_end)
        self._record("tokens_issued", sub, tenant, family)
        return pair

    def _mint(
        self,
        sub: str,
        tenant_id: str,
        roles: list[str],
        extra: dict[str, Any],
        family: str,
        now: int,
        session_end: int,
    ) -> TokenPair:
        common = {**extra, "sub": sub, "tenant_id": tenant_id, "roles": roles, "family": family}
        common.update({"iat": now, "nbf": now})
        if self.config.issuer is not None:
            common["iss"] = self.config.issuer
        if self.config.audience is not None:
            common["aud"] = self.config.audience
        access_exp = min(now + self._ttl("access"), session_end)
        access = self._sign({**common, "token_type": "access", "exp": access_exp})
        refresh = None
        if self.refresh_tokens:
            refresh = self._sign({**common, "token_type": "refresh", "exp": session_end})
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            session_id=family,
            expires_in=access_exp - now,
            refresh_expires_in=session_end - now if refresh is not None else None,
        )

    def _sign(self, claims: dict[str, Any]) -> str:
        kid, key = self._keys.signing_key()
        claims["jti"] = uuid.uuid4().hex
        token = self._jwt.encode(
            claims, key, algorithm=self.config.jwt_algorithm, headers={"kid": kid, "typ": "JWT"}
        )
        if len(token) > MAX_TOKEN_BYTES:
            raise ClaimsError(
                f"the claims make a token of {len(token)} bytes; tokens are limited to "
                f"{MAX_TOKEN_BYTES} bytes: pass fewer or smaller extra claims"
            )
        return token

    # -- verifying -----------------------------------------------------------------

    def verify_access(self, token: object) -> Claims:
        """The claims of a valid access token.

        A token verified within the last second (the revocation bound) and not yet
        expired is not decoded again (``VerifiedTokenCache``); its session is still
        checked for revocation on every call.

        Raises:
            AuthenticationError: ``token_missing``, ``token_malformed``, ``token_invalid``,
                ``token_expired``, ``wrong_token_type`` (a refresh token), or
                ``token_revoked`` (session revoked, with ``check_sessions``).
        """
        claims = self._verified.get(token) if type(token) is str else None
        if claims is None:
            claims = self._verify(token, "access")
            self._verified.put(token, claims)  # type: ignore[arg-type]  # verified: a str
        if self.check_sessions and self._state.is_revoked(claims.family, cached=True):
            raise refuse("token_revoked", "this session was revoked; sign in again")
        return claims

    def is_revoked(self, claims: Claims) -> bool:
        """Whether ``verify_access`` would now refuse these already verified claims
        because their session was revoked (logout, refresh-token reuse).

        The same check ``verify_access`` makes, and as cheap: a "not revoked" answer is
        reused for at most ``revocation_cache_seconds`` (1 s), so a cache of verified
        tokens can call it on every hit and keep the revocation bound. Always ``False``
        without ``check_sessions`` (access tokens then end at their ``exp``).
        """
        return self.check_sessions and self._state.is_revoked(claims.family, cached=True)

    def revoked_sessions(self, session_ids: Iterable[str]) -> set[str]:
        """Those of ``session_ids`` whose session is revoked, read from the store now.

        One uncached read (one query per 500 ids) for many sessions at once: a gateway
        re-checks its long-lived connections with it. Empty without ``check_sessions``,
        as ``is_revoked``.
        """
        if not self.check_sessions:
            return set()
        return self._state.revoked_among(session_ids)

    def verify_refresh(self, token: object) -> Claims:
        """The claims of a valid, unrevoked refresh token, without using it up.

        Raises:
            AuthenticationError: as ``verify_access``; ``wrong_token_type`` for an access
                token; ``refresh_disabled`` when this service issues no refresh tokens.
        """
        self._require_refresh()
        claims = self._verify(token, "refresh")
        if self._state.is_revoked(claims.family):
            raise refuse("token_revoked", "this session was revoked; sign in again")
        return claims

    def _verify(self, token: object, expected_type: str) -> Claims:
        kid = check_header(token, self.config.jwt_algorithm)
        key = self._keys.verification_key(kid)
        if key is None:
            raise refuse(
                "token_invalid", "the key that signed this token is unknown or retired", kid
            )
        try:
            payload = self._jwt.decode(
                token,  # type: ignore[arg-type]  # check_header proved it is a str
                key,
                algorithms=[self.config.jwt_algorithm],
                # exp/nbf/iat are checked by check_claims against this service's clock
                # (exp strictly, nbf/iat with leeway); PyJWT would read the wall clock.
                options={
                    "require": self._required,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
                audience=self.config.audience,
                issuer=self.config.issuer,
            )
        except jwt_errors.PyJWTError as error:
            raise refuse("token_invalid", describe(error), kid) from None
        return check_claims(
            payload,
            expected_type=expected_type,
            issuer=self.config.issuer,
            now=self._clock(),
            leeway=self.config.leeway,
            max_lifetime=self._ttl(expected_type),
        )

    # -- rotating and revoking -----------------------------------------------------

    def refresh(self, refresh_token: object, *, roles: Iterable[str] | None = None) -> TokenPair:
        """Exchange a refresh token for a new pair in the same session; the presented
        token is used up.

        Presenting a used refresh token again revokes its whole session (every refresh
        and access token of the family, the newest included), records a
        ``refresh_reuse_detected`` audit event and raises ``token_revoked``. Two
        concurrent uses of one token count as a reuse. The new refresh token keeps the
        session's original expiry.

        Args:
            refresh_token: the refresh token.
            roles: roles for the new tokens (e.g. re-read from the user store); default:
                those of the refresh token.

        Raises:
            AuthenticationError: as ``verify_refresh``, or ``token_revoked``.
        """
        claims = self.verify_refresh(refresh_token)
        if not self._state.mark_refresh_used(claims.jti, claims.family, claims.exp):
            first = self._state.revoke_session(
                claims.family, reason="refresh_reuse_detected", expires_at=claims.exp
            )
            logger.warning("refresh token reuse detected: session %s revoked", claims.family)
            self._record(
                "refresh_reuse_detected",
                claims.sub,
                claims.tenant_id,
                claims.family,
                {"jti": claims.jti, "session_revoked_now": first},
            )
            raise refuse(
                "token_revoked",
                "this refresh token was already used, so its session has been revoked; "
                "sign in again",
            )
        if self._state.is_revoked(claims.family):
            raise refuse("token_revoked", "this session was revoked; sign in again")
        role_list = claims.roles if roles is None else check_roles(roles)
        pair = self._mint(
            claims.sub,
            claims.tenant_id,
            role_list,
            claims.extra,
            claims.family,
            int(self._clock()),
            claims.exp,
        )
        self._record("tokens_refreshed", claims.sub, claims.tenant_id, claims.family)
        return pair

    def revoke_session(self, session_id: str, *, reason: str = "logout") -> bool:
        """Revoke every token of a session; ``False`` if it was already revoked.

        Access tokens of the session are refused at once when ``check_sessions`` is on,
        otherwise when they expire (``access_token_ttl``); its refresh tokens at once.
        """
        family = check_identifier(session_id, "session_id")
        expires_at = self._clock() + self._ttl("refresh")
        revoked = self._state.revoke_session(family, reason=reason[:64], expires_at=expires_at)
        if revoked:
            self._record("session_revoked", None, None, family, {"reason": reason[:64]})
        return revoked

    def revoke_subject(
        self, subject: str, *, tenant_id: str | None = None, reason: str = "subject_revoked"
    ) -> list[str]:
        """Revoke every session ``subject`` holds (in ``tenant_id`` only, when given):
        each of its refresh tokens at once, its access tokens as ``revoke_session`` says.

        Sessions started while this runs may escape; call it after the cause is removed
        (password changed, user disabled).

        Returns:
            The ids of the sessions revoked now (already revoked ones are left out).

        Raises:
            ClaimsError: ``subject`` or ``tenant_id`` is not a non-empty string.
        """
        sub = check_identifier(subject, "subject")
        tenant = None if tenant_id is None else check_identifier(tenant_id, "tenant_id")
        revoked = self._state.revoke_subject(sub, tenant_id=tenant, reason=reason[:64])
        for family in revoked:
            self._record("session_revoked", sub, tenant, family, {"reason": reason[:64]})
        return revoked

    def revoke(self, token: object) -> bool:
        """Log out: revoke the session of a valid access or refresh token.

        Raises:
            AuthenticationError: the token itself is not valid.
        """
        try:
            claims = self._verify(token, "access")
        except AuthenticationError as error:
            if error.code != "wrong_token_type":
                raise
            claims = self._verify(token, "refresh")
        return self.revoke_session(claims.family)

    def record_event(
        self,
        event: str,
        *,
        subject: str | None = None,
        tenant_id: str | None = None,
        session_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append an audit event (``login_failed``, ...) when ``audit`` is on; the detail
        must hold no secret."""
        if self.audit:
            self._state.record(
                event, subject=subject, tenant_id=tenant_id, session_id=session_id, detail=detail
            )

    def audit_events(
        self, *, event: str | None = None, session_id: str | None = None, limit: int = 100
    ) -> list[AuthEvent]:
        """Recorded audit events, newest first, optionally of one kind or one session."""
        return self._state.events(event=event, session_id=session_id, limit=limit)

    def purge_expired(self) -> int:
        """Drop revocation and session rows whose tokens have all expired; return how
        many went."""
        return self._state.purge_expired()

    # -- helpers -------------------------------------------------------------------

    def _require_refresh(self) -> None:
        if not self.refresh_tokens:
            raise refuse("refresh_disabled", "this service does not accept refresh tokens")

    def _ttl(self, token_type: str) -> int:
        ttl = (
            self.config.access_token_ttl
            if token_type == "access"  # noqa: S105 - a token kind, not a secret
            else self.config.refresh_token_ttl
        )
        return int(ttl.total_seconds())

    def _record(
        self,
        event: str,
        subject: str | None,
        tenant_id: str | None,
        family: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.record_event(
            event, subject=subject, tenant_id=tenant_id, session_id=family, detail=detail
        )


_REQUIRED_CLAIMS = ("exp", "iat", "nbf", "sub", "jti", "token_type", "tenant_id", "roles", "family")


def _extra_claims(extra: object) -> dict[str, Any]:
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        raise ClaimsError("extra must be a mapping of claim names to JSON values")
    if not all(isinstance(name, str) for name in extra):
        raise ClaimsError("extra claim names must be strings")
    reserved = sorted(RESERVED_CLAIMS.intersection(extra))
    if reserved:
        raise ClaimsError(
            f"extra may not set the reserved claims {', '.join(reserved)}: the token service "
            "sets them; pass subject, tenant_id and roles as arguments"
        )
    try:
        json.dumps(extra, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ClaimsError(f"extra claims must be JSON values: {error}") from None
    return dict(extra)
