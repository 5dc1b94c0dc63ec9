"""A preview's docs page opened through the Jupyter server (``kailash_nb.labserver``) in
headless Chromium: the browser logs in to Jupyter only (its token, then its cookie),
never sees the preview's port or token, and the page loads the preview's document and
runs a workflow from its "try it" form under the proxy's prefix (Jupyter's XSRF rules
included)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _labserver import JupyterServer, PreviewProcess, server_env

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[tuple[JupyterServer, PreviewProcess]]:
    runtime = tmp_path_factory.mktemp("runtime")
    runtime.chmod(0o700)
    env = server_env(runtime, tmp_path_factory.mktemp("home"))
    preview = PreviewProcess(env)
    server = JupyterServer(env, tmp_path_factory.mktemp("root"))
    try:
        server.wait_ready()
        yield server, preview
    finally:
        server.close()
        preview.close()


def test_the_docs_page_runs_a_workflow_through_the_jupyter_server(servers, lab_page, page_errors):
    server, preview = servers
    page = lab_page
    seen_urls: list[str] = []
    page.on("request", lambda request: seen_urls.append(request.url))
    docs = f"{server.url}/kailash-nb/previews/{preview.port}/docs"
    # ?token= logs the browser in to Jupyter; every later request carries its cookie.
    page.goto(f"{docs}?token={server.token}")
    operation = page.locator("details.op", has_text="/workflows/quote/execute")
    operation.locator("summary").click()
    form = operation.locator("form")
    form.locator("textarea").fill('{"parameters": {"discount": 0.5}}')
    form.get_by_role("button", name="Send").click()
    status = form.locator(".status")
    status.filter(has_text="200").wait_for()
    assert '"total": 9.75' in form.locator("pre").inner_text()
    assert page_errors == []
    prefix = f"{server.url}/kailash-nb/previews/{preview.port}/"
    assert f"{prefix}openapi.json" in seen_urls
    assert f"{prefix}workflows/quote/execute" in seen_urls
    assert not [url for url in seen_urls if f":{preview.port}" in url]
