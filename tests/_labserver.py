"""Test helper: a Jupyter server with the ``kailash_nb.labserver`` extension and a
preview published by another process (a kernel stand-in), sharing one runtime directory.
Used by ``tests/labserver`` and the browser test of the proxied docs page."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _serve_cli import free_port

ROOT = Path(__file__).resolve().parents[1]
PREVIEW_SCRIPT = ROOT / "tests" / "labserver" / "_preview_process.py"
# traitlets reads a Dict option from the command line as key=value.
EXTENSIONS = "kailash_nb.labserver=True"


def server_env(runtime_dir: Path, home: Path) -> dict[str, str]:
    """The environment of both processes: one runtime directory, this checkout first."""
    return {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(runtime_dir),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "KAILASH_NB_DATABASE_URL": f"sqlite:///{home / 'runs.db'}",
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }


class _CookielessClient:
    """Requests to one server, each on its own: no cookie Jupyter sets after a token
    login is ever sent back, so every request shows only its own credentials."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        return httpx.request(method, self.base_url + path, timeout=30, **options)

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.request("GET", path, **options)

    def head(self, path: str, **options: Any) -> httpx.Response:
        return self.request("HEAD", path, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        return self.request("POST", path, **options)


class JupyterServer:
    """A ``jupyter_server`` process with the extension, on a free loopback port."""

    def __init__(self, env: dict[str, str], root: Path) -> None:
        self.token = secrets.token_hex(24)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                f"--ServerApp.token={self.token}",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                "--ServerApp.open_browser=False",
                "--ServerApp.allow_root=True",
                f"--ServerApp.root_dir={root}",
                f"--ServerApp.jpserver_extensions={EXTENSIONS}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.client = _CookielessClient(self.url)

    @property
    def auth(self) -> dict[str, str]:
        """Jupyter's token header."""
        return {"Authorization": f"token {self.token}"}

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter server exited: {self.process.stderr.read()}")
            try:
                if self.client.get("/api/status", headers=self.auth).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise TimeoutError("jupyter server did not answer /api/status")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


class PreviewProcess:
    """``_preview_process.py``: publishes ``pricing`` as ``quote`` with a preview."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(PREVIEW_SCRIPT)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the preview process exited before publishing")
        self.port = int(json.loads(line)["port"])

    def stop_preview(self) -> None:
        self.process.stdin.write("stop\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "stopped"

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
