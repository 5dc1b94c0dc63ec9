"""``kailash-nb serve`` in a child process, for the tests that serve what a user would."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve_cli(
    args: Sequence[str],
    env: dict[str, str],
    port: int,
    *,
    ready: str = "/health",
    timeout: float = 30.0,
) -> Iterator[tuple[str, list[str]]]:
    """``python -m kailash_nb.cli serve *args`` listening on ``port``, once ``GET ready``
    answers 200 (the test fails if the process exits or ``timeout`` passes first); yields
    the base URL and a list that receives the process's stderr when it ends."""
    logs: list[str] = []
    process = subprocess.Popen(
        [sys.executable, "-m", "kailash_nb.cli", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"{base}{ready}", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"serve did not answer {ready}"
            time.sleep(0.05)  # polling interval, not a wait for readiness
        yield base, logs
    finally:
        process.terminate()
        logs.append(process.communicate(timeout=10)[1])
