"""``%kailash publish NAME --mcp`` / ``kn.publish(..., mcp=True)``: the preview serves
the published workflows as MCP tools, and ``kailash-nb serve`` (``--mcp``, or a cell
that published with ``--mcp``) serves them too."""

from __future__ import annotations

import asyncio
import os

import httpx
import nbformat
import pytest
from _mcp_clients import mcp_session
from _serve_cli import free_port, serve_cli
from nbformat.v4 import new_code_cell, new_notebook

import kailash_nb as kn
from kailash_nb.notebook import NotebookError
from kailash_nb.notebook.magic_args import PublishCommand, parse
from kailash_nb.notebook.publish import serves_mcp
from kailash_nb.notebook.serving import load_notebook

NODES = """\
@kn.node
def total(qty=1, price=2.5):
    return round(qty * price, 2)
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


def test_parse_publish_mcp():
    assert parse("publish etl --mcp --preview") == PublishCommand("etl", None, True, True)
    assert parse("publish etl").mcp is False


def test_the_mcp_mark_follows_the_last_publish():
    define_pricing()
    kn.publish(mcp=True)
    assert serves_mcp()
    kn.publish()  # published again without mcp
    assert not serves_mcp()
    with pytest.raises(NotebookError, match="mcp must be True or False"):
        kn.publish(mcp="yes")


def test_magic_preview_serves_the_workflow_as_an_mcp_tool(shell):
    shell.user_ns["kn"] = kn
    define_pricing()
    expected = dict(kn.run(qty=3))

    async def scenario():
        preview = shell.run_line_magic("kailash", "publish pricing --mcp --preview")
        await preview.ready()
        assert preview.mcp_url == f"{preview.base_url}/mcp"
        token = preview.headers["Authorization"].removeprefix("Bearer ")
        async with mcp_session(preview.base_url, "http", token) as session:
            tools = (await session.list_tools()).tools
            result = await session.call_tool("pricing", {"qty": 3})
        await preview.stop()
        return tools, result, repr(preview)

    tools, result, text = asyncio.run(scenario())
    assert [tool.name for tool in tools] == ["pricing"]
    assert result.structuredContent == expected
    assert "MCP tools: http://127.0.0.1:" in text and text.endswith("/mcp")


def test_a_preview_without_mcp_serves_no_mcp_route():
    define_pricing()

    async def scenario() -> int:
        preview = kn.publish(preview=True)
        await preview.ready()
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{preview.base_url}/mcp", json={}, headers=preview.headers)
        await preview.stop()
        return answer.status_code

    assert asyncio.run(scenario()) == 404


def _notebook(tmp_path, *cells: str):
    path = tmp_path / "pricing.ipynb"
    document = new_notebook(cells=[new_code_cell(cell) for cell in cells])
    nbformat.write(document, path)
    return path


def test_load_notebook_reports_the_mcp_mark(tmp_path):
    head = ("import kailash_nb as kn", "kn.workflow('pricing')", NODES)
    with_mcp = load_notebook(_notebook(tmp_path, *head, "%kailash publish pricing --mcp"))
    assert with_mcp.mcp and list(with_mcp.workflows) == ["pricing"]
    kn.reset()
    without = load_notebook(_notebook(tmp_path, *head, "%kailash publish pricing"))
    assert not without.mcp


@pytest.mark.slow
def test_serve_serves_mcp_when_a_cell_published_with_mcp(tmp_path):
    notebook = _notebook(
        tmp_path,
        "import kailash_nb as kn",
        "kn.workflow('pricing')",
        NODES,
        "%kailash publish pricing --mcp",
    )
    port = free_port()
    env = {**os.environ, "KAILASH_NB_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}"}
    env.pop("KAILASH_NB_JWT_SECRET", None)
    with serve_cli([str(notebook), "--port", str(port)], env, port) as (base, logs):

        async def call():
            async with mcp_session(base, "ws", None) as session:  # loopback, no auth
                return await session.call_tool("pricing", {"qty": 2})

        result = asyncio.run(call())
    stderr = logs[0]
    assert result.structuredContent == {"total": {"result": 5.0}}
    assert "serving MCP tools at /mcp" in stderr
