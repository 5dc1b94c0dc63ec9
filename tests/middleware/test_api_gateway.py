"""``APIGateway``: the gateway from Kailash's ``APIGateway`` arguments, failing closed
without a credential source, with ``agent_ui`` and ``realtime`` attached."""

from __future__ import annotations

import asyncio

import pytest
import tornado.httpclient

from kailash_nb.middleware import (
    AgentUIMiddleware,
    APIGateway,
    Gateway,
    KailashJWTAuth,
    RealtimeMiddleware,
)
from kailash_nb.middleware.api_gateway import SECRET_ENV
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.security.config import SecurityConfig

SECRET = "s" * 40


@pytest.fixture(autouse=True)
def no_secret(monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)


def test_authentication_is_required_unless_turned_off(tmp_path):
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    with pytest.raises(GatewayConfigurationError, match=SECRET_ENV):
        APIGateway(database_url=url)
    with pytest.raises(GatewayConfigurationError, match=SECRET_ENV):
        APIGateway(database_url=url, enable_auth=False, require_auth=True)
    open_gateway = APIGateway(database_url=url, enable_auth=False, title="Open")
    assert isinstance(open_gateway, Gateway) and open_gateway.auth is None
    assert open_gateway.settings.title == "Open"
    with pytest.raises(GatewayConfigurationError, match="without authentication"):
        open_gateway.check_can_serve("0.0.0.0")


def test_credential_sources(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    configured = APIGateway(database_url=url, auth_config=SecurityConfig(jwt_secret=SECRET))
    assert isinstance(configured.auth, KailashJWTAuth)
    from_dict = APIGateway(database_url=url, auth_config={"jwt_secret": SECRET})
    assert isinstance(from_dict.auth, KailashJWTAuth)
    manager = KailashJWTAuth(config=SecurityConfig(jwt_secret=SECRET), store_url=url)
    assert APIGateway(database_url=url, auth_manager=manager).auth is manager
    monkeypatch.setenv(SECRET_ENV, "short")
    with pytest.raises(GatewayConfigurationError, match="32 bytes"):
        APIGateway(database_url=url)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    assert isinstance(APIGateway(database_url=url).auth, KailashJWTAuth)
    with pytest.raises(TypeError, match="KailashJWTAuth"):
        APIGateway(database_url=url, auth_manager=object())
    for option in ({"external_auth_reason": "proxy"}, {"auth_exempt_paths": ["/api"]}):
        with pytest.raises(GatewayConfigurationError, match="not supported"):
            APIGateway(database_url=url, **option)


def test_agent_ui_and_realtime_are_attached_and_served(tmp_path):
    gateway = APIGateway(
        database_url=f"sqlite:///{tmp_path / 'gw.db'}",
        enable_auth=False,
        max_sessions=7,
        cors_origins=["https://app.example.com"],
    )
    assert isinstance(gateway.agent_ui, AgentUIMiddleware)
    assert isinstance(gateway.realtime, RealtimeMiddleware)
    assert gateway.realtime.agent_ui is gateway.agent_ui and gateway.agent_ui.max_sessions == 7

    async def scenario() -> None:
        port = await gateway.start("127.0.0.1", 0)
        try:
            client = tornado.httpclient.AsyncHTTPClient()
            answer = await client.fetch(f"http://127.0.0.1:{port}/health", raise_error=False)
            assert answer.code == 200
        finally:
            await gateway.stop()

    asyncio.run(scenario())
