"""Token routes: ``POST /auth/token`` (password login) and ``POST /auth/refresh``.

``POST /auth/token`` answers 401 ``invalid_credentials`` for a wrong password or an
unknown user alike, 401 ``second_factor_required`` / ``invalid_second_factor`` for a
TOTP-enrolled user without an acceptable ``totp`` or ``backup_code``, and 429
``login_locked`` with ``Retry-After`` while the account, the caller's address or the
user's second factor is locked (see ``kailash_nb.security.lockout``). The address is
the TCP peer: forwarding headers are not read.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import tornado.web

from kailash_nb.middleware._problems import ProblemError
from kailash_nb.middleware.client_address import TrustedProxies, client_address
from kailash_nb.middleware.contract import operations
from kailash_nb.middleware.contract.models import RefreshRequest, TokenRequest
from kailash_nb.middleware.handlers.base import GatewayHandler
from kailash_nb.security.claims import TokenPair
from kailash_nb.security.errors import AuthenticationError
from kailash_nb.security.lockout import LoginLockedError
from kailash_nb.security.totp import SecondFactorError

__all__ = ["RefreshHandler", "TokenHandler"]

# The gateway trusts no proxy yet: the key is the TCP peer (normalized, so an
# IPv4-mapped IPv6 peer and its IPv4 form are one key); forwarding headers never count.
_NO_PROXIES = TrustedProxies()
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="kailash_nb"'}


class _AuthRoute(GatewayHandler):
    requires_auth = False

    def _auth(self) -> Any:
        if self.gateway.auth is None:
            raise ProblemError(
                404,
                "auth_not_configured",
                "this gateway runs without authentication; create it with security_config",
            )
        return self.gateway.auth

    def _write_pair(self, pair: TokenPair) -> None:
        self.write_json(
            {
                "access_token": pair.access_token,
                "refresh_token": pair.refresh_token,
                "session_id": pair.session_id,
                "expires_in": pair.expires_in,
                "refresh_expires_in": pair.refresh_expires_in,
                "token_type": pair.token_type,
            }
        )


@tornado.web.stream_request_body
class TokenHandler(_AuthRoute):
    """``POST /auth/token`` with ``{"username", "password"}`` (plus ``"totp"`` or
    ``"backup_code"`` for TOTP-enrolled users): a new token pair, 401 or 429."""

    route = "/auth/token"
    contract = operations.serving(POST=operations.ISSUE_TOKEN)

    async def post(self) -> None:
        """Check the credentials (in a worker thread: hashing is slow) and issue tokens."""
        auth = self._auth()
        request = self.body(TokenRequest)
        login = functools.partial(
            auth.login,
            request.username,
            request.password,
            totp=request.totp,
            backup_code=request.backup_code,
            client_ip=client_address(self.request.remote_ip or "", (), _NO_PROXIES),
        )
        try:
            pair = await asyncio.get_running_loop().run_in_executor(None, login)
        except LoginLockedError as locked:
            raise ProblemError(
                429,
                "login_locked",
                "too many failed sign-ins; try again after the Retry-After delay",
                headers={"Retry-After": str(locked.retry_after)},
            ) from None
        except SecondFactorError as refused:
            raise ProblemError(401, refused.code, str(refused), headers=_CHALLENGE) from None
        except AuthenticationError:
            raise ProblemError(
                401,
                "invalid_credentials",
                "the username or the password is wrong",
                headers=_CHALLENGE,
            ) from None
        self._write_pair(pair)


@tornado.web.stream_request_body
class RefreshHandler(_AuthRoute):
    """``POST /auth/refresh`` with ``{"refresh_token"}``: the rotated pair, or 401."""

    route = "/auth/refresh"
    contract = operations.serving(POST=operations.REFRESH_TOKEN)

    async def post(self) -> None:
        """Rotate the refresh token (reuse revokes the whole session)."""
        auth = self._auth()
        token = self.body(RefreshRequest).refresh_token
        try:
            pair = await asyncio.get_running_loop().run_in_executor(
                None, auth.refresh_tokens, token
            )
        except AuthenticationError:
            raise ProblemError(
                401,
                "invalid_refresh_token",
                "the refresh token is invalid, expired or already used; sign in again",
                headers={"WWW-Authenticate": 'Bearer realm="kailash_nb", error="invalid_token"'},
            ) from None
        self._write_pair(pair)
