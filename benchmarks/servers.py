"""Server child processes shared by the gateway benchmarks (run as ``python
benchmarks/<script>.py``, so this directory is on ``sys.path``): CPU pinning, the
one-line JSON announcement a server makes once it listens, and SIGTERM at the end."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

#: Set (by a benchmark's ``--no-pin``) to let the OS place the server and load processes.
NO_PIN_ENV = "KAILASH_NB_BENCH_NO_PIN"


def can_pin() -> bool:
    """Whether to pin: two CPUs or more, and ``NO_PIN_ENV`` not set."""
    return (
        hasattr(os, "sched_setaffinity")
        and len(os.sched_getaffinity(0)) >= 2
        and not os.environ.get(NO_PIN_ENV)
    )


def pin(cpu: int) -> None:
    """Pin this process to ``cpu`` when pinning applies."""
    if can_pin():
        os.sched_setaffinity(0, {cpu})


def announce(**fields: Any) -> None:
    """Tell the parent the server is listening: ``fields`` as one JSON line on stdout."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


async def until_terminated() -> None:
    """Wait for SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


class ServerProcess:
    """``with ServerProcess(command) as server``: the child started and listening, what
    it announced in ``server.ready`` (``port`` and ``token`` as properties); stopped
    with SIGTERM (killed after 30 s) at the end.

    Args:
        command: the child's command line; the child calls :func:`announce` once it
            listens.
        what: the child, as error messages name it.
        preexec_fn: run in the child before exec (pinning it).
    """

    def __init__(
        self,
        command: Sequence[str] = (),
        *,
        what: str = "the server",
        preexec_fn: Callable[[], object] | None = None,
    ) -> None:
        self.command = list(command)
        self.what = what
        self.preexec_fn = preexec_fn
        self.process: subprocess.Popen[str] | None = None
        self.ready: dict[str, Any] = {}

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self.ready["port"])

    @property
    def token(self) -> str:
        """The bearer access token the server announced."""
        return str(self.ready.get("token", ""))

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> ServerProcess:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, text=True, preexec_fn=self.preexec_fn
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.__exit__()
            raise RuntimeError(f"{self.what} exited before listening")
        self.ready = json.loads(line)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
