"""Serve one gateway from several worker processes sharing one listening socket.

``Gateway.run()`` with ``worker_processes > 1`` calls :func:`serve_workers`. The
parent process checks the configuration, migrates the store once, binds ``host:port``
and closes every store connection it holds, then forks the workers. Each worker opens
its own store connections, run recorder and run pool after the fork and accepts
connections from the shared socket (the kernel hands each new connection to one
worker); the parent only supervises:

* SIGTERM or SIGINT to the parent is forwarded (as SIGTERM) to every worker, which
  stops accepting, drains its in-flight runs (up to ``DRAIN_TIMEOUT``) and exits; the
  parent returns once all have exited, or kills those still running
  ``STOP_GRACE`` seconds later.
* A worker that exits while the gateway is not stopping is restarted. More than
  ``MAX_RESTARTS`` restarts within ``RESTART_WINDOW`` seconds is a crash loop: the
  other workers are stopped and :class:`WorkerCrashLoopError` is raised (a script
  calling ``run()`` exits non-zero).
* A worker whose parent is gone (killed with SIGKILL) stops itself within a second.

Threads and open connections do not survive ``fork``: nothing may hold either before
the workers start. Store engines are disposed of before forking; other threads still
running are reported with a warning (their work does not happen in the workers).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Protocol

import tornado.netutil

from kailash_nb.hosts import address_family
from kailash_nb.middleware._limits import DRAIN_TIMEOUT
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.sdk_exceptions import KailashException
from kailash_nb.store.database import close_pooled_connections
from kailash_nb.store.run_history import RunStore

__all__ = [
    "MAX_RESTARTS",
    "RESTART_WINDOW",
    "STOP_GRACE",
    "ServedByWorkers",
    "WorkerCrashLoopError",
    "serve_workers",
]

logger = logging.getLogger(__name__)

MAX_RESTARTS = 5
"""Restarts allowed within ``RESTART_WINDOW`` seconds before giving up."""
RESTART_WINDOW = 60.0
STOP_GRACE = DRAIN_TIMEOUT + 10.0
"""Seconds the parent waits for workers to drain after a stop signal, then kills them."""
PARENT_CHECK_SECONDS = 0.5
"""How often a worker checks that its parent still runs."""
_POLL_SECONDS = 0.05


class WorkerCrashLoopError(KailashException, RuntimeError):
    """The gateway's workers kept dying, or one failed while stopping; the log has
    each worker's exit status."""


class _WorkerSettings(Protocol):
    @property
    def worker_processes(self) -> int: ...

    @property
    def title(self) -> str: ...


class ServedByWorkers(Protocol):
    """What :func:`serve_workers` needs of a gateway (``Gateway`` provides it)."""

    @property
    def settings(self) -> _WorkerSettings:
        """``worker_processes`` (how many workers) and ``title`` (for the log)."""
        ...

    @property
    def store_url(self) -> str:
        """The store migrated once in the parent before forking."""
        ...

    def check_can_serve(self, host: str) -> None:
        """Raise ``GatewayConfigurationError`` if ``host`` may not be served as
        configured (checked in the parent, before forking)."""

    async def serve(
        self,
        host: str,
        port: int,
        sockets: list[Any] | None = None,
        stop_requested: asyncio.Event | None = None,
    ) -> None:
        """Serve ``sockets`` until ``stop_requested`` is set (in a worker)."""


def serve_workers(gateway: ServedByWorkers, host: str, port: int) -> None:
    """Serve ``gateway`` from ``gateway.settings.worker_processes`` forked workers on
    ``host:port`` until SIGTERM/SIGINT (blocking).

    Raises:
        GatewayConfigurationError: called inside a running event loop, or the gateway
            cannot serve ``host`` as configured (see ``Gateway.start``).
        StoreConfigurationError: the database URL is invalid.
        WorkerCrashLoopError: workers kept dying, or one exited non-zero while stopping.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no loop in this thread: forking is safe
    else:
        raise GatewayConfigurationError(
            "gateway.run() with worker_processes > 1 forks worker processes and cannot be "
            "called inside a running event loop (a notebook kernel, an async app); run it "
            "from a plain script or `kailash-nb serve --workers N`"
        )
    gateway.check_can_serve(host)
    _prepare_store(gateway)
    sockets = tornado.netutil.bind_sockets(port, address=host, family=address_family(host))
    bound = sockets[0].getsockname()[1]
    _close_inherited_connections()
    _warn_about_threads()
    supervisor = _Supervisor(gateway, host, sockets)
    logger.info(
        "gateway %r: %d workers serving on %s:%d",
        gateway.settings.title,
        supervisor.count,
        host,
        bound,
    )
    try:
        failure = supervisor.run()
    finally:
        for sock in sockets:
            sock.close()
    if failure:
        raise WorkerCrashLoopError(failure)


class _Supervisor:
    """Forks the workers and keeps ``count`` of them running until told to stop."""

    def __init__(self, gateway: ServedByWorkers, host: str, sockets: list[Any]) -> None:
        self.gateway = gateway
        self.host = host
        self.sockets = sockets
        self.count = gateway.settings.worker_processes
        self.children: dict[int, int] = {}  # pid -> worker slot
        self.stopping = False
        self.signal_received: int | None = None
        self.stop_deadline: float | None = None
        self.restarts: collections.deque[float] = collections.deque()

    def run(self) -> str | None:
        """Supervise until every worker exited; the failure to report, or ``None``."""
        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in handled}
        failure: str | None = None
        try:
            for slot in range(self.count):
                self._spawn(slot)
            while self.children:
                if self.signal_received is not None and not self.stopping:
                    name = signal.Signals(self.signal_received).name
                    logger.info("gateway stopping (%s): draining the workers", name)
                    self._stop()
                exited = self._reap()
                if not exited:
                    self._kill_stragglers()
                    time.sleep(_POLL_SECONDS)
                    continue
                for pid, slot, code in exited:
                    if self.stopping:
                        if code != 0:
                            failure = failure or f"worker {pid} stopped with {_describe(code)}"
                            logger.error("worker %d stopped with %s", pid, _describe(code))
                        continue
                    logger.error("worker %d exited unexpectedly with %s", pid, _describe(code))
                    if self._crash_loop():
                        failure = (
                            f"workers exited {MAX_RESTARTS + 1} times within "
                            f"{RESTART_WINDOW:.0f} s (last: {_describe(code)}); see the log "
                            "for their errors"
                        )
                        logger.error("gateway workers keep dying: stopping the others")
                        self._stop()
                        continue
                    self._spawn(slot)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return failure

    def _reap(self) -> list[tuple[int, int, int]]:
        """``(pid, slot, exit code)`` of the workers that exited; only our own children
        are waited for, so other child processes of the caller are left alone."""
        exited = []
        for pid in list(self.children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (SIGCHLD ignored): status lost
                done, status = pid, 255 << 8
            if done == pid:
                exited.append((pid, self.children.pop(pid), os.waitstatus_to_exitcode(status)))
        return exited

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Only a flag: the supervising loop notices it within _POLL_SECONDS.
        self.signal_received = signum

    def _stop(self) -> None:
        self.stopping = True
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + STOP_GRACE
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _kill_stragglers(self) -> None:
        if self.stop_deadline is None or time.monotonic() < self.stop_deadline:
            return
        for pid in list(self.children):
            logger.error("worker %d did not stop within %.0f s: killing it", pid, STOP_GRACE)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.stop_deadline = time.monotonic() + STOP_GRACE

    def _crash_loop(self) -> bool:
        now = time.monotonic()
        self.restarts.append(now)
        while self.restarts and self.restarts[0] < now - RESTART_WINDOW:
            self.restarts.popleft()
        if len(self.restarts) > MAX_RESTARTS:
            return True
        # Back off a little as restarts pile up, so a failing worker does not spin.
        time.sleep(min(1.0, 0.1 * (len(self.restarts) - 1)))
        return False

    def _spawn(self, slot: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _worker_main(self.gateway, self.host, self.sockets, parent)
            finally:
                with contextlib.suppress(Exception):
                    logging.shutdown()
                    sys.stdout.flush()
                    sys.stderr.flush()
                # Never return into the parent's code (the caller of run()).
                os._exit(code)
        self.children[pid] = slot
        logger.info("worker %d started (slot %d)", pid, slot)


def _worker_main(gateway: ServedByWorkers, host: str, sockets: list[Any], parent: int) -> int:
    """A worker's life: serve from ``sockets`` until SIGTERM/SIGINT; the exit code."""
    stop = _StopRequest()
    # Installed for the worker's whole life: a second signal (the parent forwards
    # SIGTERM while a terminal's Ctrl-C reaches the whole group) never finds the
    # default action, which would kill the worker mid-drain.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop.request)
    threading.Thread(
        target=_watch_parent, args=(parent, stop), name="kailash-nb-parent-watch", daemon=True
    ).start()

    async def serve() -> None:
        stop_requested = asyncio.Event()
        stop.attach(asyncio.get_running_loop(), stop_requested)
        await gateway.serve(host, 0, sockets=sockets, stop_requested=stop_requested)

    try:
        asyncio.run(serve())
    except Exception:
        logger.exception("gateway worker %d failed", os.getpid())
        return 1
    return 0


class _StopRequest:
    """A stop asked for by a signal or the parent watch, passed to the worker's loop
    once it runs (a request that came earlier is kept)."""

    def __init__(self) -> None:
        self.requested = False
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def request(self, *_: object) -> None:
        """Ask the worker to stop (signal handler, or from any thread)."""
        self.requested = True
        loop, event = self._loop, self._event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(event.set)

    def attach(self, loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
        """Deliver requests to ``event`` on ``loop`` from now on."""
        # The event first: a signal handler running in between sees no loop yet and
        # only records the request, which the check below delivers.
        self._event = event
        self._loop = loop
        if self.requested:
            event.set()


def _watch_parent(parent: int, stop: _StopRequest) -> None:
    while not stop.requested:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            logger.error("gateway worker %d: its parent %d is gone; stopping", os.getpid(), parent)
            stop.request()
            return


def _prepare_store(gateway: ServedByWorkers) -> None:
    """Migrate the store and recover dead runs once, in the parent, so workers do not
    race on it; raises the store's configuration errors before anything is forked."""
    RunStore(gateway.store_url)


def _close_inherited_connections() -> None:
    """Close every pooled store connection of this process: a connection shared by a
    parent and its forked workers would interleave their traffic."""
    close_pooled_connections()


def _warn_about_threads() -> None:
    others = [
        thread.name for thread in threading.enumerate() if thread is not threading.current_thread()
    ]
    if others:
        logger.warning(
            "threads running before the gateway workers fork do not exist in the workers: %s",
            ", ".join(sorted(others)),
        )


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"exit code {code}"
