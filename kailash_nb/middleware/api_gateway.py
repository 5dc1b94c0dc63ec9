"""``APIGateway``: the gateway built from Kailash's ``APIGateway`` arguments.

It is kailash_nb's :class:`~kailash_nb.middleware.gateway.Gateway` (the one Tornado
server: REST, SSE, WebSocket, OpenAPI), with ``agent_ui`` (sessions and executions)
and ``realtime`` (webhooks and event streams) attached, made from the arguments
Kailash code passes::

    gateway = APIGateway(title="My App", cors_origins=["https://app.example.com"],
                         auth_config=SecurityConfig(jwt_secret=secret))
    gateway.register_workflow("report", workflow)
    gateway.run(host="0.0.0.0", port=8000)

Authentication fails closed, as in Kailash: unless ``enable_auth=False`` or
``require_auth=False`` says otherwise, the gateway needs a credential source
(``auth_manager``, ``auth_config`` or the ``KAILASH_API_GATEWAY_SECRET`` environment
variable, 32 bytes or more) and refuses to be built without one. An open gateway
(no authentication) serves on loopback addresses only, like every kailash_nb gateway.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.middleware.gateway import Gateway, create_gateway
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.middleware.realtime import RealtimeMiddleware
from kailash_nb.security.config import SecurityConfig

__all__ = ["SECRET_ENV", "APIGateway"]

#: Kailash's environment variable holding the gateway's HS256 token secret.
SECRET_ENV = "KAILASH_API_GATEWAY_SECRET"  # noqa: S105 - a variable name, not a secret


class APIGateway(Gateway):
    """A :class:`Gateway` with ``agent_ui`` and ``realtime``, from Kailash's arguments.

    Args:
        title, description, version, cors_origins, enable_docs, database_url: as for
            :func:`~kailash_nb.middleware.gateway.create_gateway`.
        max_sessions: recorded on ``agent_ui`` (see ``AgentUIMiddleware``).
        enable_auth, require_auth: whether requests must carry a token;
            ``require_auth`` (when not ``None``) wins over ``enable_auth``.
        auth_manager: a :class:`KailashJWTAuth` to verify and issue tokens.
        auth_config: a :class:`SecurityConfig` (or a dict of its fields) to build one.
        external_auth_reason, auth_exempt_paths: not supported (``None`` only): no
            route of this gateway is served unauthenticated behind another layer.

    Attributes:
        agent_ui: the gateway's ``AgentUIMiddleware`` (executions are its runs).
        realtime: a ``RealtimeMiddleware`` over ``agent_ui``.

    Raises:
        GatewayConfigurationError: authentication required and no credential source,
            a short ``KAILASH_API_GATEWAY_SECRET``, or ``external_auth_reason`` /
            ``auth_exempt_paths`` given.
        TypeError: ``auth_manager`` or ``auth_config`` of another type.
    """

    def __init__(
        self,
        title: str = "Kailash Middleware Gateway",
        description: str = "Enhanced API gateway for agent-frontend communication",
        version: str = "1.0.0",
        cors_origins: Iterable[str] | None = None,
        enable_docs: bool = True,
        max_sessions: int = 1000,
        enable_auth: bool = True,
        auth_manager: KailashJWTAuth | None = None,
        database_url: str | None = None,
        require_auth: bool | None = None,
        auth_config: SecurityConfig | dict[str, Any] | None = None,
        external_auth_reason: str | None = None,
        auth_exempt_paths: Iterable[str] | None = None,
    ) -> None:
        if external_auth_reason is not None or auth_exempt_paths is not None:
            raise GatewayConfigurationError(
                "external_auth_reason and auth_exempt_paths are not supported: every "
                "protected route of the gateway checks its own token"
            )
        if auth_manager is not None and not isinstance(auth_manager, KailashJWTAuth):
            raise TypeError(
                f"auth_manager must be a KailashJWTAuth, got {type(auth_manager).__name__}"
            )
        required = enable_auth if require_auth is None else require_auth
        security = _security_config(auth_config, use_environment=bool(required))
        if required and auth_manager is None and security is None:
            raise GatewayConfigurationError(
                f"APIGateway requires authentication: pass auth_manager=KailashJWTAuth(...) "
                f"or auth_config=SecurityConfig(jwt_secret=...), set {SECRET_ENV} "
                "(32 bytes or more), or pass enable_auth=False for an open gateway "
                "(served on loopback addresses only)"
            )
        built = create_gateway(
            title=title,
            description=description,
            version=version,
            cors_origins=tuple(cors_origins or ()),
            enable_docs=enable_docs,
            security_config=security,
            database_url=database_url,
        )
        super().__init__(
            built.settings,
            auth=auth_manager if auth_manager is not None else built.auth,
            rate_limiter=built.rate_limiter,
        )
        self.agent_ui.max_sessions = max_sessions
        self.realtime = RealtimeMiddleware(self.agent_ui)


def _security_config(
    auth_config: SecurityConfig | dict[str, Any] | None, *, use_environment: bool
) -> SecurityConfig | None:
    if isinstance(auth_config, SecurityConfig):
        return auth_config
    if isinstance(auth_config, dict):
        return SecurityConfig(**auth_config)
    if auth_config is not None:
        raise TypeError(
            f"auth_config must be a SecurityConfig or a dict, got {type(auth_config).__name__}"
        )
    secret = os.environ.get(SECRET_ENV)
    if not use_environment or not secret:
        return None
    if len(secret.encode()) < 32:
        raise GatewayConfigurationError(f"{SECRET_ENV} must be at least 32 bytes")
    return SecurityConfig(jwt_secret=secret)
