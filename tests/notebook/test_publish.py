"""``kn.publish`` / ``%kailash publish`` (marks and the in-kernel preview) and
``kailash-nb serve`` (a saved notebook served from a fresh process)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
from pathlib import Path

import httpx
import nbformat
import pytest
from _serve_cli import free_port, serve_cli
from IPython.core.error import UsageError
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import kailash_nb as kn
from kailash_nb.cli import main
from kailash_nb.cli.serve import JWT_SECRET_ENV
from kailash_nb.middleware.auth import KailashJWTAuth
from kailash_nb.notebook import NotebookError, Publication
from kailash_nb.notebook.magic_args import PublishCommand, parse
from kailash_nb.notebook.publish import published
from kailash_nb.notebook.serve_cells import CellFilter
from kailash_nb.security.config import SecurityConfig

NODES = """\
@kn.node
def items(discount=0.0):
    basket = [("widget", 3, 2.50), ("gadget", 1, 12.00)]
    return [{"item": n, "qty": q, "price": round(p * (1 - discount), 2)} for n, q, p in basket]


@kn.node
def invoice(items):
    return {"total": round(sum(i["qty"] * i["price"] for i in items), 2)}
"""


@pytest.fixture(autouse=True)
def fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("KAILASH_NB_DATABASE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    kn.reset()
    yield
    kn.reset()


def define_pricing() -> None:
    kn.workflow("pricing")
    exec(NODES, {"kn": kn})


# -- marks --------------------------------------------------------------------------------


def test_publish_marks_the_workflow_under_its_route():
    define_pricing()
    publication = kn.publish(route="/prices")
    assert isinstance(publication, Publication)
    assert publication.url is None
    assert published() == {"pricing": "prices"}
    assert repr(publication) == "Published workflow 'pricing' as POST /workflows/prices/execute"
    kn.publish("pricing")  # publishing again moves the workflow to its new route
    assert published() == {"pricing": "pricing"}


def test_publish_refuses_bad_routes_unknown_workflows_and_taken_routes():
    define_pricing()
    with pytest.raises(NotebookError, match="route '/bad path'"):
        kn.publish(route="/bad path")
    with pytest.raises(NotebookError, match="route"):
        kn.publish(route="x" * 65)
    with pytest.raises(NotebookError, match="did you mean 'pricing'"):
        kn.publish("pricnig")
    kn.publish(route="shared")
    kn.workflow("other")
    kn.node("one")(lambda: 1)
    with pytest.raises(NotebookError, match="already serves workflow 'pricing'"):
        kn.publish("other", route="shared")
    kn.reset()
    assert published() == {}


def test_preview_needs_a_running_loop():
    define_pricing()
    with pytest.raises(NotebookError, match="running event loop"):
        kn.publish(preview=True)


def test_publication_listeners_hear_marks_previews_and_reset():
    # The module: the package's ``publish`` attribute is the function.
    publish_module = importlib.import_module("kailash_nb.notebook.publish")
    seen: list[tuple[dict[str, str], object]] = []
    remove = publish_module.add_publication_listener(
        lambda: seen.append((published(), publish_module.preview_address()))
    )
    try:
        define_pricing()
        kn.publish(route="/prices")

        async def scenario() -> Publication:
            preview = kn.publish(preview=True)
            await preview.ready()
            address = publish_module.preview_address()
            assert address is not None and address.served == {"pricing": "pricing"}
            assert preview.base_url == address.base_url == f"http://127.0.0.1:{address.port}"
            await preview.stop()
            return preview

        asyncio.run(scenario())
        kn.reset()
    finally:
        remove()
    define_pricing()
    kn.publish()  # after remove(): not heard
    assert [marks for marks, _ in seen] == [
        {"pricing": "prices"},
        {"pricing": "pricing"},  # the preview started
        {"pricing": "pricing"},  # and stopped
        {},
    ]
    assert [address is None for _, address in seen] == [True, False, True, True]


# -- preview ------------------------------------------------------------------------------


def test_preview_serves_the_same_results_as_run_inside_the_running_loop():
    define_pricing()
    expected = dict(kn.run(discount=0.1))

    async def scenario() -> None:
        first = kn.publish(route="/pricing", preview=True)  # sync call inside a running loop
        assert first.url is not None and first.url.endswith("/workflows/pricing/execute")
        async with httpx.AsyncClient() as client:
            response = await client.post(
                first.url, json={"parameters": {"discount": 0.1}}, headers=first.headers
            )
            assert response.status_code == 200
            assert response.json()["results"] == expected
            second = kn.publish("pricing", preview=True)  # replaces the first server
            await second.ready()
            assert second.base_url != first.base_url
            health = await client.get(f"{second.base_url}/health")
            assert health.status_code == 200
            with pytest.raises(httpx.ConnectError):
                await client.get(f"{first.base_url}/health")
        await second.stop()

    asyncio.run(scenario())


def test_preview_repr_hides_the_port_in_deterministic_mode():
    define_pricing()
    kn.deterministic(True)

    async def scenario() -> str:
        publication = kn.publish(preview=True)
        await publication.ready()
        await publication.stop()
        return repr(publication)

    assert asyncio.run(scenario()) == (
        "Published workflow 'pricing' as POST /workflows/pricing/execute\n"
        "preview (this machine only; send headers=preview.headers, its own token): "
        "POST http://127.0.0.1:<port>/workflows/pricing/execute"
    )


def test_a_preview_answers_only_its_own_token():
    """Another user of the machine who finds the port gets 401, with no token or with a
    token of any other key; the preview's own ``headers`` are accepted."""
    from kailash_nb.middleware.auth import KailashJWTAuth
    from kailash_nb.security import SecurityConfig

    define_pricing()
    stranger = (
        KailashJWTAuth(config=SecurityConfig(jwt_secret="s" * 48), store_url="sqlite://")
        .issue_tokens("notebook", tenant_id="default", roles=())
        .access_token
    )

    async def scenario() -> list[int]:
        preview = kn.publish(preview=True)
        await preview.ready()
        statuses = []
        async with httpx.AsyncClient() as client:
            for headers in ({}, {"Authorization": f"Bearer {stranger}"}, preview.headers):
                response = await client.post(preview.url, json={"parameters": {}}, headers=headers)
                statuses.append(response.status_code)
            docs = await client.get(f"{preview.base_url}/workflows")
            statuses.append(docs.status_code)
        await preview.stop()
        return statuses

    assert asyncio.run(scenario()) == [401, 401, 200, 401]


# -- the magic ----------------------------------------------------------------------------


def test_parse_publish():
    assert parse("publish etl --route /nightly --preview") == PublishCommand(
        "etl", "/nightly", True
    )
    assert parse("publish") == PublishCommand()


def test_magic_publishes_and_previews(shell):
    shell.user_ns["kn"] = kn
    define_pricing()
    publication = shell.run_line_magic("kailash", "publish pricing --route /p")
    assert published() == {"pricing": "p"} and publication.url is None
    with pytest.raises(UsageError, match="route"):
        shell.run_line_magic("kailash", "publish pricing --route /a/b")
    expected = dict(kn.run(discount=0.5))

    async def scenario() -> None:
        preview = shell.run_line_magic("kailash", "publish pricing --route /p --preview")
        async with httpx.AsyncClient() as client:
            response = await client.post(
                preview.url, json={"parameters": {"discount": 0.5}}, headers=preview.headers
            )
        await preview.stop()
        assert response.json()["results"] == expected

    asyncio.run(scenario())


# -- what serve skips ---------------------------------------------------------------------


def test_cell_filter_drops_display_statements_and_what_uses_them():
    namespace = {"kn": kn, "run": kn.run}
    cells = CellFilter(namespace)

    def plan(source: str) -> str | None:
        return cells.plan(source, source).code

    assert plan("kn.workflow('x')") == "kn.workflow('x')"  # untouched cells run as written
    assert plan("kn.show()") is None
    assert plan("result = kn.run(a=1)\nx = 2") == "x = 2"
    assert plan("print(result.value('n'))") is None  # reads a skipped name
    assert plan("result = 3\nprint(result)") == "result = 3\nprint(result)"  # rebound: runs
    assert plan("run()") is None  # imported by name
    magic = "get_ipython().run_line_magic('kailash', 'publish p --preview')"
    assert plan(f"preview = {magic}") == f"preview = {magic}"  # runs, preview off
    assert plan("async with c() as client:\n    r = await client.post(preview.url)") is None
    assert plan("r.json()") is None  # bound only inside the skipped statement
    assert plan("def f():\n    return preview") is not None  # bodies run only when called
    assert plan("get_ipython().run_line_magic('kailash', 'status')") is None


# -- kailash-nb serve ---------------------------------------------------------------------


def write_notebook(path: Path) -> None:
    cells = [
        new_markdown_cell("# served"),
        new_code_cell('import kailash_nb as kn\n\n%load_ext kailash_nb\nkn.workflow("pricing")'),
        new_code_cell(NODES),
        new_code_cell("%kailash run --param discount=0.1"),
        new_code_cell("%kailash show"),
        new_code_cell("result = kn.run(invoice, no_cache=True)  # fails: not a node id\nresult"),
        new_code_cell('print(result.value("invoice"))'),
        new_code_cell("preview = %kailash publish pricing --route /prices --preview\npreview"),
        new_code_cell("import httpx\n\nresponse = httpx.post(preview.url, json={})\nresponse"),
    ]
    nbformat.write(new_notebook(cells=cells), path)


def serving(notebook: Path, env: dict[str, str]) -> contextlib.AbstractContextManager:
    """``kailash-nb serve notebook`` on a free port, once ``GET /health`` answers;
    yields the base URL and a list that receives the process's stderr when it ends."""
    port = free_port()
    return serve_cli([str(notebook), "--port", str(port)], env, port, timeout=15)


def test_serve_answers_with_the_same_results_as_the_notebook_run(tmp_path, shell):
    notebook = tmp_path / "pricing.ipynb"
    write_notebook(notebook)
    shell.user_ns["kn"] = kn
    kn.workflow("pricing")
    assert shell.run_cell(NODES, store_history=False).success
    expected = dict(shell.run_line_magic("kailash", "run --param discount=0.1"))

    env = {k: v for k, v in os.environ.items() if k != JWT_SECRET_ENV}
    with serving(notebook, env) as (base, logs):
        response = httpx.post(
            f"{base}/workflows/prices/execute", json={"parameters": {"discount": 0.1}}, timeout=10
        )
        assert response.status_code == 200, response.text
        assert response.json()["results"] == expected
    assert "skipped cell 4: %kailash run --param discount=0.1" in logs[0]
    assert "skipped cell 6: result = kn.run(invoice, no_cache=True)" in logs[0]  # would fail
    assert "skipped cell 7: print(result.value('invoice'))" in logs[0]


def test_serve_requires_tokens_with_a_jwt_secret(tmp_path):
    notebook = tmp_path / "pricing.ipynb"
    write_notebook(notebook)
    secret = "s" * 48
    database = os.environ["KAILASH_NB_DATABASE_URL"]
    auth = KailashJWTAuth(config=SecurityConfig(jwt_secret=secret), store_url=database)
    auth.add_user("ana", "correct horse battery", tenant_id="default", roles=["user"])
    with serving(notebook, {**os.environ, JWT_SECRET_ENV: secret}) as (base, _):
        url = f"{base}/workflows/prices/execute"
        assert httpx.post(url, json={}, timeout=10).status_code == 401
        login = httpx.post(
            f"{base}/auth/token",
            json={"username": "ana", "password": "correct horse battery"},
            timeout=10,
        )
        token = login.json()["access_token"]
        response = httpx.post(
            url, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert response.status_code == 200, response.text
        assert response.json()["results"]["invoice"] == {"result": {"total": 19.5}}


def test_serve_refuses_bad_workers_and_open_public_hosts(tmp_path, capsys, monkeypatch):
    notebook = tmp_path / "n.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), notebook)
    assert main(["serve", str(notebook), "--workers", "0"]) == 1
    assert "worker_processes must be an int >= 1" in capsys.readouterr().err
    monkeypatch.delenv(JWT_SECRET_ENV, raising=False)
    assert main(["serve", str(notebook), "--host", "0.0.0.0"]) == 1
    assert f"set {JWT_SECRET_ENV}" in capsys.readouterr().err
