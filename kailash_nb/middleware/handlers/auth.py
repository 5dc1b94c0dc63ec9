"""Token routes: ``POST /auth/token`` (password login) and ``POST /auth/refresh``."""

from __future__ import annotations

import asyncio
from typing import Any

import tornado.web

from kailash_nb.middleware._problems import ProblemError
from kailash_nb.middleware.handlers.base import GatewayHandler
from kailash_nb.security.claims import TokenPair
from kailash_nb.security.errors import AuthenticationError

__all__ = ["RefreshHandler", "TokenHandler"]

_MAX_USERNAME = 256
_MAX_PASSWORD = 1024


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
    """``POST /auth/token`` with ``{"username", "password"}``: a new token pair, or 401."""

    route = "/auth/token"

    async def post(self) -> None:
        """Check the password (in a worker thread: hashing is slow) and issue tokens."""
        auth = self._auth()
        body = self.json_object({"username", "password"}, {"username", "password"})
        username, password = body["username"], body["password"]
        if not (
            isinstance(username, str)
            and isinstance(password, str)
            and 0 < len(username) <= _MAX_USERNAME
            and len(password) <= _MAX_PASSWORD
        ):
            raise ProblemError(400, "invalid_field", "username and password must be strings")
        try:
            pair = await asyncio.get_running_loop().run_in_executor(
                None, auth.login, username, password
            )
        except AuthenticationError:
            raise ProblemError(
                401,
                "invalid_credentials",
                "the username or the password is wrong",
                headers={"WWW-Authenticate": 'Bearer realm="kailash_nb"'},
            ) from None
        self._write_pair(pair)


@tornado.web.stream_request_body
class RefreshHandler(_AuthRoute):
    """``POST /auth/refresh`` with ``{"refresh_token"}``: the rotated pair, or 401."""

    route = "/auth/refresh"

    async def post(self) -> None:
        """Rotate the refresh token (reuse revokes the whole session)."""
        auth = self._auth()
        body = self.json_object({"refresh_token"}, {"refresh_token"})
        token = body["refresh_token"]
        if not isinstance(token, str):
            raise ProblemError(400, "invalid_field", "refresh_token must be a string")
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
