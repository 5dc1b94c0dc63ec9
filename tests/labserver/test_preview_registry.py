"""The registry of running previews (``kailash_nb.notebook.lab_previews``): what a kernel
writes for the Jupyter server extension, and what the extension accepts from it."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys

import pytest

import kailash_nb as kn
from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.notebook import lab_previews
from kailash_nb.security.config import SecurityConfig
from kailash_nb.security.errors import AuthenticationError
from kailash_nb.store.run_history import process_token

SECRET = "k" * 48


@pytest.fixture
def runtime(tmp_path, monkeypatch):
    """A fresh Jupyter runtime directory; returns its previews directory."""
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("KAILASH_NB_DATABASE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    kn.reset()
    yield tmp_path / "runtime" / lab_previews.PREVIEWS_DIRECTORY
    kn.reset()


def register(port=40001, security=None):
    return lab_previews.register(
        port=port,
        host="127.0.0.1",
        workflows=[("pricing", "quote")],
        security=security or SecurityConfig(jwt_secret=SECRET),
        subject="notebook",
        tenant_id="default",
    )


def test_a_registration_is_a_private_file_describing_the_preview(runtime):
    registration = register()
    assert registration.path == runtime / "40001.json"
    assert stat.S_IMODE(runtime.stat().st_mode) == 0o700
    assert stat.S_IMODE(registration.path.stat().st_mode) == 0o600
    assert [path.name for path in runtime.iterdir()] == ["40001.json"]  # no temp file left
    data = json.loads(registration.path.read_text())
    assert data["port"] == 40001 and data["host"] == "127.0.0.1"
    assert data["pid"] == os.getpid() and data["process"] == process_token()
    assert data["workflows"] == [{"workflow": "pricing", "route": "quote"}]
    assert data["credential"]["secret"] == SECRET
    (record,) = lab_previews.live_previews(runtime)
    assert record.port == 40001 and record.workflows == (("pricing", "quote"),)
    registration.remove()
    registration.remove()
    assert lab_previews.live_previews(runtime) == []


@pytest.mark.parametrize(
    "options", [{}, {"issuer": "https://issuer.example", "audience": "previews"}]
)
def test_the_proxy_token_is_accepted_by_the_previews_own_verification(runtime, options):
    """Another TokenService with the preview's key and parameters mints what the
    preview's ``KailashJWTAuth`` accepts (session store, revocation list and all); a
    token of another key is refused."""
    security = SecurityConfig(jwt_secret=SECRET, **options)
    preview_auth = KailashJWTAuth(config=security, store_url="sqlite://")
    register(40002, security)
    record = lab_previews.read_preview(runtime, 40002)
    scheme, token = record.credential.authorization().split(" ")
    assert scheme == "Bearer"
    claims = preview_auth.verify_token(token)
    assert claims.sub == "notebook" and claims.tenant_id == "default"
    assert claims.exp - claims.iat == lab_previews.PROXY_TOKEN_TTL.total_seconds()
    other = lab_previews.PreviewCredential(secret="o" * 48, **options)
    with pytest.raises(AuthenticationError):
        preview_auth.verify_token(other.authorization().split(" ")[1])


def test_removing_an_old_registration_keeps_a_newer_preview_on_the_same_port(runtime):
    old = register()
    new = register()
    old.remove()
    assert new.path.exists()
    new.remove()
    assert not new.path.exists()


def test_a_registration_of_a_gone_process_is_ignored_and_deleted(runtime):
    """The same pid with another start time is another process (a reused pid)."""
    path = register().path
    data = json.loads(path.read_text())
    data["process"] = f"{os.getpid()}:1"
    path.write_text(json.dumps(data))
    assert lab_previews.read_preview(runtime, 40001) is None
    assert not path.exists()


@pytest.mark.parametrize(
    "change",
    [
        lambda data: data.update(host="10.0.0.5"),
        lambda data: data.update(port="40001"),
        lambda data: data.update(port=40009),
        lambda data: data["credential"].update(algorithm="none"),
        lambda data: data.pop("credential"),
        lambda data: data.update(format=2),
    ],
)
def test_a_malformed_registration_counts_as_none(runtime, change):
    path = register().path
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    assert lab_previews.read_preview(runtime, 40001) is None
    assert lab_previews.live_previews(runtime) == []


def test_a_registration_others_may_write_is_ignored(runtime):
    path = register().path
    path.chmod(0o622)
    assert lab_previews.read_preview(runtime, 40001) is None


def test_without_jupyter_core_nothing_is_registered(runtime, monkeypatch):
    monkeypatch.setitem(sys.modules, "jupyter_core.paths", None)
    assert lab_previews.registry_directory() is None
    assert register() is None
    assert not runtime.exists()


def define_pricing() -> None:
    kn.workflow("pricing")

    @kn.node
    def total(qty=1):
        return qty * 2


@pytest.mark.slow
def test_a_preview_is_registered_while_it_runs(runtime):
    """Registered once it listens; a replacing preview takes over; stop, replace and
    reset remove the file."""
    define_pricing()

    async def scenario() -> tuple[list[int], list[list[int]]]:
        seen = []
        first = await kn.publish("pricing", preview=True).ready()
        first_port = int(first.base_url.rsplit(":", 1)[1])
        seen.append([record.port for record in lab_previews.live_previews(runtime)])
        second = await kn.publish("pricing", preview=True).ready()
        second_port = int(second.base_url.rsplit(":", 1)[1])
        seen.append([record.port for record in lab_previews.live_previews(runtime)])
        await second.stop()
        seen.append([record.port for record in lab_previews.live_previews(runtime)])
        third = await kn.publish("pricing", preview=True).ready()
        assert [r.port for r in lab_previews.live_previews(runtime)] == [
            int(third.base_url.rsplit(":", 1)[1])
        ]
        kn.reset()
        seen.append([record.port for record in lab_previews.live_previews(runtime)])
        await third.stop()
        return [first_port, second_port], seen

    (first_port, second_port), seen = asyncio.run(scenario())
    assert seen == [[first_port], [second_port], [], []]
    assert list(runtime.iterdir()) == []
