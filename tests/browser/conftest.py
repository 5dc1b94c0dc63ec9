"""Fixtures for browser tests: a JupyterLab server and headless Debian Chromium.

``lab_server`` starts JupyterLab on a free loopback port, with authentication off, in a
temporary root directory and with its own settings, workspaces and runtime directories, so
nothing on the machine leaks into the test and the test leaves nothing behind. ``lab_page``
is a Playwright page in headless ``/usr/bin/chromium`` (test tools cannot download browsers
here: ``tools/ensure_browser.sh`` installs Debian's). Without that browser the tests skip,
except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
# The network is closed: nothing may try to reach out, and Chromium runs as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LAB_START_TIMEOUT = 60.0

# User settings for the test server: no news or update checks (they would reach the
# network and pop up a toast over the notebook), and every cell kept in the DOM so the
# test can read all prompts and outputs without scrolling.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


@dataclass(frozen=True)
class LabServer:
    """A running JupyterLab: its base URL, its root directory and its log file."""

    url: str
    root: Path
    log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_settings(settings_dir: Path) -> None:
    for plugin, values in LAB_SETTINGS.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _wait_until_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    """Poll the server's REST API until it answers; fail early if the process dies."""
    deadline = time.monotonic() + LAB_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"JupyterLab exited with code {process.returncode} before it was ready; "
                f"its log:\n{log.read_text(errors='replace')}"
            )
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    pytest.fail(
        f"JupyterLab did not answer {url}/api/status within {LAB_START_TIMEOUT:.0f} s; "
        f"its log:\n{log.read_text(errors='replace')}"
    )


def _stop(process: subprocess.Popen) -> None:
    """Stop the server and the kernels it started: SIGTERM first (the server shuts its
    kernels down), then SIGKILL to its whole process group if it hangs."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    # The group holds only what this fixture started (start_new_session=True): kernels
    # that outlived the server would otherwise keep running after the test session.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=15)


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    """Debian's Chromium; skips without it, but fails under CI, where it must be there."""
    if CHROMIUM.exists():
        return CHROMIUM
    message = (
        f"{CHROMIUM} is missing: run `bash tools/ensure_browser.sh` as root "
        "(apt-get install chromium chromium-driver) to run the browser tests"
    )
    if os.environ.get("CI"):
        pytest.fail(f"browser tests may not be skipped in CI: {message}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def lab_server(
    chromium_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LabServer]:
    """A JupyterLab server on 127.0.0.1:<free port> serving an empty temporary root.

    Tests copy the notebooks they open into ``lab_server.root``.
    """
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "root"
    root.mkdir()
    settings = base / "settings"
    _write_settings(settings)
    log = base / "lab.log"
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True",
        # Authentication off for this loopback-only, short-lived test server. These are
        # the current names of ServerApp.token and ServerApp.password.
        "--IdentityProvider.token=",
        "--PasswordIdentityProvider.hashed_password=",
    ]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(url, process, log)
        yield LabServer(url=url, root=root, log=log)
    finally:
        _stop(process)


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture
def page_errors() -> list[str]:
    """Uncaught JavaScript errors of ``lab_page``, to explain a failure."""
    return []


@pytest.fixture
def lab_page(
    request: pytest.FixtureRequest, chromium_path: Path, page_errors: list[str], tmp_path: Path
) -> Iterator[Page]:
    """A Playwright page in headless Chromium; the browser is closed after the test.

    When the test fails, a screenshot of the page is left at ``tmp_path/failure.png``.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(30_000)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            yield page
            if request.node.stash.get(_CALL_FAILED, False):
                page.screenshot(path=tmp_path / "failure.png", full_page=True)
                print(f"screenshot of the failed page: {tmp_path / 'failure.png'}")
        finally:
            browser.close()
