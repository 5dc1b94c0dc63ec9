"""``LoopbackServer``: a Tornado application served on a free 127.0.0.1 port from a
daemon thread with its own event loop.

The local stand-ins for other services (the transaction participant service, the LLM
protocol server) are built on it::

    server = LoopbackServer(application, thread_name="my-service")
    port = server.start()        # listening before this returns
    ...
    server.stop()                # connections closed, thread ended
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import tornado.httpserver
import tornado.netutil
import tornado.web

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """Serves ``application`` on 127.0.0.1 from a background thread.

    Args:
        application: the Tornado application.
        thread_name: the serving thread's name.
        max_body_size: the largest request body accepted (Tornado's default: 100 MB).
        on_start: called in the serving thread, on its loop, before ``start`` returns
            (to make loop-bound objects such as an ``asyncio.Event``).
        on_stop: called on the loop when ``stop`` begins, before connections close.
    """

    def __init__(
        self,
        application: tornado.web.Application,
        *,
        thread_name: str,
        max_body_size: int | None = None,
        on_start: Callable[[], None] | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.application = application
        self.thread_name = thread_name
        self.max_body_size = max_body_size
        self._on_start = on_start
        self._on_stop = on_stop
        self.port: int | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: tornado.httpserver.HTTPServer | None = None

    @property
    def running(self) -> bool:
        """True between ``start`` and ``stop``."""
        return self._thread is not None

    def start(self) -> int:
        """Listen on a free port and serve; returns the port once the socket listens.

        Raises:
            RuntimeError: already running, or the serving thread failed to start.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self.thread_name} is already running")
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                server = tornado.httpserver.HTTPServer(
                    self.application, max_body_size=self.max_body_size
                )
                server.add_sockets(sockets)
                if self._on_start is not None:
                    self._on_start()
                self.loop, self._server = loop, server
                ready.set()
                loop.run_forever()
            finally:
                ready.set()
                loop.close()

        self._thread = threading.Thread(target=serve, name=self.thread_name, daemon=True)
        self._thread.start()
        ready.wait()
        if self._server is None:
            self._thread = None
            for sock in sockets:
                sock.close()
            raise RuntimeError(f"{self.thread_name} failed to start")
        self.port = sockets[0].getsockname()[1]
        return self.port

    def stop(self) -> None:
        """Stop serving, close every connection and end the thread; stopping a
        stopped server does nothing."""
        thread, loop = self._thread, self.loop
        if thread is None or loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._thread = self.loop = self._server = None
        self.port = None

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.stop()
        if self._on_stop is not None:
            self._on_stop()
        await self._server.close_all_connections()
