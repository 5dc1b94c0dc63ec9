"""``KailashJWTAuth``: the Kailash authentication facade over ``TokenService`` and
``UserStore``.

Every keyword does something; an unknown keyword is a ``TypeError``::

    auth = KailashJWTAuth(
        secret_key=os.environ["KAILASH_NB_JWT_SECRET"],   # >= 32 bytes
        token_expiry_hours=8,          # access tokens last a work day
        refresh_token_enabled=True,
        session_management=True,
        audit_logging=True,
        issuer="https://auth.example.com",               # any SecurityConfig field
    )
    auth.add_user("alice", password, tenant_id="acme", roles=["analyst"])
    pair = auth.login("alice", password)
    claims = auth.verify_token(pair.access_token)

Kailash's method names work too: ``create_token_pair``, ``verify_token``,
``refresh_access_token``, ``revoke_token`` and ``revoke_all_user_tokens``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kailash_nb.security.claims import Claims, TokenPair, check_roles
from kailash_nb.security.config import SecurityConfig
from kailash_nb.security.errors import AuthenticationError, ClaimsError
from kailash_nb.security.lockout import LoginThrottle, ThrottleKey, login_policies
from kailash_nb.security.passwords import User, UserStore, throttle_key
from kailash_nb.security.tokens import TokenService
from kailash_nb.security.totp import SecondFactorError, TotpEnrollment

if TYPE_CHECKING:
    from argon2 import PasswordHasher

    from kailash_nb.security import AuthEvent

__all__ = ["KailashJWTAuth"]

_MAX_LOGGED_USERNAME = 128
_MAX_ACCESS_HOURS = 24
#: A session's length when ``token_expiry_hours`` sets the access tokens' lifetime and no
#: ``refresh_token_ttl`` is given: Kailash's ``refresh_token_expire_days`` default.
_SESSION_WITH_LONG_ACCESS = timedelta(days=7)


class KailashJWTAuth:
    """Login, token verification, refresh and logout for one deployment.

    Role changes (AUTH-25): roles are not re-read per request. An access token carries
    the roles its subject had when it was minted, so a role removed server-side
    (``users.set_roles``, ``users.remove_user``) keeps working until that token's
    ``exp``: at most ``access_token_ttl`` (15 min by default). The next refresh of a
    password session re-reads the user's roles (or revokes the session when the user
    is gone), so the new tokens no longer carry the role. Sessions of a subject
    authenticated elsewhere (``issue_tokens``) keep their roles until they end. To end
    access at once, revoke the session (``logout``, ``tokens.revoke_session``): with
    ``session_management`` that takes effect within 1 s in every process, open
    ``WS /ws`` connections included.

    Args:
        secret_key: the HS256 secret (``SecurityConfig.jwt_secret``), at least 32 bytes.
            ``None`` is refused unless ``development_mode=True`` or an RS256/ES256 key is
            given among the security options.
        token_expiry_hours: the access tokens' lifetime (``access_token_ttl``, more than
            0 and at most 24 hours), as in Kailash. A session then lasts 7 days
            (``refresh_token_ttl``, Kailash's refresh-token default) unless
            ``refresh_token_ttl`` is given. ``None``: the config's defaults (15 min access
            tokens, 8 h sessions). A logout or ``revoke_all_user_tokens`` still ends an
            access token at once with ``session_management``; without it, only at its
            expiry, so long access tokens want ``session_management=True``.
        refresh_token_enabled: issue single-use rotating refresh tokens; when ``False``
            a session is one access token and ``refresh_tokens`` is refused.
        session_management: check every access token against revoked sessions, so
            ``logout`` ends access at once (one store lookup per call); when ``False``
            access tokens are checked statelessly and a logout ends them at expiry.
        audit_logging: record logins, issues, refreshes, logouts and refresh-token reuse
            in the store's audit trail.
        config: a ready ``SecurityConfig`` instead of ``secret_key`` and the options.
        store_url: database for users and session state (default: the store's default).
        password_hasher: the argon2 ``PasswordHasher`` for ``UserStore``.
        **security_options: further ``SecurityConfig`` fields (``jwt_algorithm``,
            ``jwt_private_key``, ``issuer``, ``audience``, ``access_token_ttl``,
            ``enable_rate_limiting``, ``max_requests_per_minute``, ...).

    Raises:
        TypeError: an unknown keyword, a non-bool flag, or an option given twice.
        ValueError: an invalid configuration (``pydantic.ValidationError``), or
            ``token_expiry_hours`` outside (0, 24].
    """

    def __init__(
        self,
        secret_key: str | None = None,
        token_expiry_hours: float | None = None,
        refresh_token_enabled: bool = True,
        session_management: bool = True,
        audit_logging: bool = True,
        *,
        config: SecurityConfig | None = None,
        store_url: str | None = None,
        password_hasher: PasswordHasher | None = None,
        **security_options: Any,
    ) -> None:
        for name, flag in (
            ("refresh_token_enabled", refresh_token_enabled),
            ("session_management", session_management),
            ("audit_logging", audit_logging),
        ):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        self.token_expiry_hours = token_expiry_hours
        self.refresh_token_enabled = refresh_token_enabled
        self.session_management = session_management
        self.audit_logging = audit_logging
        self.config = _build_config(config, secret_key, token_expiry_hours, security_options)
        self.tokens = TokenService(
            self.config,
            store_url,
            refresh_tokens=refresh_token_enabled,
            check_sessions=session_management,
            audit=audit_logging,
        )
        self.users = UserStore(store_url, hasher=password_hasher)

    def add_user(
        self, username: str, password: str, *, tenant_id: str, roles: Iterable[str]
    ) -> User:
        """Create a user who can ``login``; see ``UserStore.add_user``."""
        return self.users.add_user(username, password, tenant_id=tenant_id, roles=roles)

    def login(
        self,
        username: str,
        password: str,
        *,
        totp: str | None = None,
        backup_code: str | None = None,
        client_ip: str | None = None,
    ) -> TokenPair:
        """Check a username, password and (for TOTP-enrolled users) second factor, and
        start a session.

        Failed sign-ins are counted in the store per account and per ``client_ip``
        (AUTH-26), wrong second-factor codes per user (AUTH-30); a locked key refuses
        every attempt, right password or not, until its lock ends. A locked unknown
        username is refused exactly like a locked known one. A successful sign-in clears
        the account's and the second factor's counts (not the address's).

        The tokens' subject is the user id; they carry ``preferred_username`` and
        ``amr: ["pwd"]`` (``["pwd", "otp"]`` with a second factor), which makes
        ``refresh_tokens`` re-read the user's roles.

        Raises:
            LoginLockedError: too many recent failures; ``retry_after`` says how long.
            SecondFactorError: ``second_factor_required`` (an enrolled user gave neither
                ``totp`` nor ``backup_code``) or ``invalid_second_factor``.
            AuthenticationError: ``invalid_credentials`` (unknown user and wrong password
                alike).
        """
        throttle = LoginThrottle(self.users.engine, clock=self.users.clock)
        policies = login_policies(self.config)
        account = ThrottleKey("account", throttle_key(username))
        address = [ThrottleKey("ip", client_ip)] if client_ip else []
        throttle.check([*address, account])
        try:
            user = self.users.authenticate(username, password)
        except AuthenticationError:
            shown = username[:_MAX_LOGGED_USERNAME] if isinstance(username, str) else None
            detail = _with_address({"username": shown}, client_ip)
            self.tokens.record_event("login_failed", detail=detail)
            if throttle.record_failure([(key, policies[key.scope]) for key in [account, *address]]):
                self.tokens.record_event("login_locked", detail=detail)
            raise
        methods = ["pwd"]
        second = ThrottleKey("totp", user.user_id)
        if self.users.totp_enrolled(user):
            self._check_second_factor(user, totp, backup_code, throttle, second, address, client_ip)
            methods.append("otp")
        throttle.reset([account, second])
        pair = self.tokens.issue(
            user.user_id,
            tenant_id=user.tenant_id,
            roles=user.roles,
            extra={"amr": methods, "preferred_username": user.username},
        )
        self.tokens.record_event(
            "login_succeeded",
            subject=user.user_id,
            tenant_id=user.tenant_id,
            session_id=pair.session_id,
            detail=_with_address({"username": user.username, "amr": methods}, client_ip),
        )
        return pair

    def _check_second_factor(
        self,
        user: User,
        totp: str | None,
        backup_code: str | None,
        throttle: LoginThrottle,
        second: ThrottleKey,
        address: list[ThrottleKey],
        client_ip: str | None,
    ) -> None:
        # Checked after the password, so a lock here says nothing to whoever lacks it.
        throttle.check([second])
        if totp is None and backup_code is None:
            raise SecondFactorError(
                "second_factor_required",
                "this account needs a second factor: send the authenticator app's code as "
                "totp, or an unused backup code as backup_code",
            )
        factors = self.users.second_factors
        if totp is not None:
            accepted = factors.verify_totp(user.user_id, totp)
        else:
            accepted = factors.use_backup_code(user.user_id, backup_code)
        if accepted:
            return
        detail = _with_address({"username": user.username}, client_ip)
        self.tokens.record_event(
            "second_factor_failed", subject=user.user_id, tenant_id=user.tenant_id, detail=detail
        )
        policies = login_policies(self.config)
        if throttle.record_failure([(key, policies[key.scope]) for key in [second, *address]]):
            self.tokens.record_event(
                "login_locked", subject=user.user_id, tenant_id=user.tenant_id, detail=detail
            )
        raise SecondFactorError(
            "invalid_second_factor",
            "the code is wrong, expired or already used; wait for the next code",
        )

    def enroll_totp(self, username: str) -> TotpEnrollment:
        """Enroll ``username`` in TOTP (issuer ``config.totp_issuer``); see
        ``UserStore.enroll_totp``. Its sign-ins then need a second factor.

        Raises:
            KeyError: no such user.
        """
        return self.users.enroll_totp(username, issuer=self.config.totp_issuer)

    def issue_tokens(
        self,
        subject: str,
        *,
        tenant_id: str,
        roles: Iterable[str],
        extra: Mapping[str, Any] | None = None,
    ) -> TokenPair:
        """Start a session for a subject authenticated elsewhere (a service account);
        see ``TokenService.issue``."""
        return self.tokens.issue(subject, tenant_id=tenant_id, roles=roles, extra=extra)

    def verify_token(self, token: object) -> Claims:
        """The claims of a valid access token; see ``TokenService.verify_access``.

        Raises:
            AuthenticationError: the token is missing, malformed, invalid, expired, revoked
                or a refresh token.
        """
        return self.tokens.verify_access(token)

    def refresh_tokens(self, refresh_token: object) -> TokenPair:
        """Rotate a refresh token into a new pair; see ``TokenService.refresh``.

        For a password login the user's current roles go into the new tokens, and a
        removed user's session is revoked, so a role change reaches clients within one
        access-token lifetime.

        Raises:
            AuthenticationError: ``refresh_disabled``, ``token_revoked`` (reuse, logout,
                user removed), or any token error.
        """
        claims = self.tokens.verify_refresh(refresh_token)
        methods = claims.extra.get("amr")
        if not (isinstance(methods, list) and "pwd" in methods):
            return self.tokens.refresh(refresh_token)
        user = self.users.get_user_by_id(claims.sub)
        if user is None or user.tenant_id != claims.tenant_id:
            self.tokens.revoke_session(claims.family, reason="user_removed")
            raise AuthenticationError(
                "token_revoked", "the user of this session no longer exists; sign in again"
            )
        return self.tokens.refresh(refresh_token, roles=user.roles)

    # -- Kailash's names ---------------------------------------------------------------

    def create_token_pair(
        self,
        user_id: str,
        tenant_id: str | None = None,
        *,
        roles: Iterable[str] = (),
        permissions: Iterable[str] | None = None,
        **claims: Any,
    ) -> TokenPair:
        """Start a session for ``user_id`` (authenticated elsewhere) and return its
        access and refresh tokens; Kailash's name for ``issue_tokens``.

        Args:
            user_id: the subject (``sub``).
            tenant_id: the tenant the subject acts in; required (every kailash_nb token
                names its tenant, the only source of tenant for a request).
            roles: role names.
            permissions: carried as the ``permissions`` claim, as Kailash does.
            **claims: further claims (JSON values, no reserved claim names).

        Raises:
            TypeError: ``session_id`` (a new pair always starts a new session, whose
                id is ``TokenPair.session_id``).
            ClaimsError: no ``tenant_id``, bad roles, a reserved or non-JSON claim.
        """
        if "session_id" in claims:
            raise TypeError(
                "create_token_pair starts a new session, so it takes no session_id: read "
                "the new session's id from the returned TokenPair.session_id"
            )
        if tenant_id is None:
            raise ClaimsError(
                "create_token_pair needs tenant_id: every kailash_nb token names the tenant "
                "its subject acts in"
            )
        if permissions is not None:
            claims["permissions"] = check_roles(permissions)
        return self.issue_tokens(user_id, tenant_id=tenant_id, roles=roles, extra=claims)

    def refresh_access_token(self, refresh_token: object) -> TokenPair:
        """Kailash's name for ``refresh_tokens``: rotate a refresh token into a new pair
        (a reused refresh token revokes its whole session).

        Raises:
            AuthenticationError: as ``refresh_tokens``.
        """
        return self.refresh_tokens(refresh_token)

    def revoke_token(self, token: object) -> bool:
        """Kailash's name for ``logout``: revoke the session of an access or refresh
        token; ``False`` if it already was.

        Raises:
            AuthenticationError: the token itself is not valid.
        """
        return self.logout(token)

    def revoke_all_user_tokens(self, user_id: str, *, tenant_id: str | None = None) -> int:
        """Revoke every session of ``user_id`` (in ``tenant_id`` only, when given), in
        every process: refresh tokens at once, access tokens at once with
        ``session_management`` (within the 1 s revocation bound), else at their expiry.

        Returns:
            How many sessions were revoked now.

        Raises:
            ClaimsError: ``user_id`` is not a non-empty string.
        """
        return len(self.tokens.revoke_subject(user_id, tenant_id=tenant_id, reason="user_revoked"))

    def logout(self, token: object) -> bool:
        """Revoke the session of an access or refresh token; ``False`` if it already was.

        Raises:
            AuthenticationError: the token itself is not valid.
        """
        return self.tokens.revoke(token)

    def is_revoked(self, claims: Claims) -> bool:
        """Whether the session of already verified access-token claims has been revoked
        (within the 1 s revocation bound); see ``TokenService.is_revoked``. Always
        ``False`` without ``session_management``."""
        return self.tokens.is_revoked(claims)

    def revoked_sessions(self, session_ids: Iterable[str]) -> set[str]:
        """Those of ``session_ids`` revoked now, in one uncached store read; see
        ``TokenService.revoked_sessions``. Empty without ``session_management``."""
        return self.tokens.revoked_sessions(session_ids)

    def audit_events(
        self, *, event: str | None = None, session_id: str | None = None, limit: int = 100
    ) -> list[AuthEvent]:
        """Recorded authentication events, newest first."""
        return self.tokens.audit_events(event=event, session_id=session_id, limit=limit)


def _build_config(
    config: SecurityConfig | None,
    secret_key: str | None,
    token_expiry_hours: float | None,
    options: dict[str, Any],
) -> SecurityConfig:
    unknown = sorted(set(options) - set(SecurityConfig.model_fields))
    if unknown:
        raise TypeError(
            f"KailashJWTAuth() got unexpected keyword arguments {', '.join(unknown)}; the "
            f"security options are the SecurityConfig fields: "
            f"{', '.join(sorted(SecurityConfig.model_fields))}"
        )
    if config is not None:
        if secret_key is not None or token_expiry_hours is not None or options:
            raise TypeError(
                "pass either config=SecurityConfig(...) or secret_key/token_expiry_hours/"
                "security options, not both"
            )
        return config
    if secret_key is not None and "jwt_secret" in options:
        raise TypeError("give the secret once: secret_key or jwt_secret, not both")
    if secret_key is not None:
        options["jwt_secret"] = secret_key
    if token_expiry_hours is not None:
        if "access_token_ttl" in options:
            raise TypeError(
                "give the access tokens' lifetime once: token_expiry_hours or access_token_ttl"
            )
        if isinstance(token_expiry_hours, bool) or not isinstance(token_expiry_hours, (int, float)):
            raise TypeError(f"token_expiry_hours must be a number, got {token_expiry_hours!r}")
        if not 0 < token_expiry_hours <= _MAX_ACCESS_HOURS:
            raise ValueError(
                f"token_expiry_hours is the access tokens' lifetime: more than 0 and at most "
                f"{_MAX_ACCESS_HOURS} hours, got {token_expiry_hours!r}"
            )
        options["access_token_ttl"] = timedelta(hours=token_expiry_hours)
        options.setdefault("refresh_token_ttl", _SESSION_WITH_LONG_ACCESS)
    return SecurityConfig(**options)


def _with_address(detail: dict[str, Any], client_ip: str | None) -> dict[str, Any]:
    """``detail`` with the client's address, which threat detection reads."""
    if isinstance(client_ip, str) and client_ip:
        detail["client_ip"] = client_ip[:64]
    return detail
