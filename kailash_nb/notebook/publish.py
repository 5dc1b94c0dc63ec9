"""Promoting a notebook workflow to a served gateway: ``kn.publish`` and its preview.

``publish`` marks a notebook workflow as served under a route name; the mark is
what ``kailash-nb serve NOTEBOOK.ipynb`` reads after re-executing the notebook.
``preview=True`` also starts the gateway ``serve`` would build (every published
workflow, built now) inside the kernel's running event loop, so a later cell can
call it::

    preview = kn.publish("pricing", preview=True)      # or %kailash publish pricing --preview
    # next cell
    async with httpx.AsyncClient() as client:
        response = await client.post(
            preview.url, json={"parameters": {"qty": 3}}, headers=preview.headers
        )

Semantics:

- ``name`` is a notebook workflow (``None``: the current one); it must have nodes and
  build. ``route`` is its served name (default: the workflow's name); a leading ``/``
  is stripped and the rest must match ``^[A-Za-z0-9_-]{1,64}$``. A workflow has one
  route: publishing it again moves it; a route held by another workflow is refused.
- The preview serves the workflows as they are at publish time; publish again (with
  ``preview=True``) after changing nodes. Each preview replaces the previous one (the
  old server stops, then the new one starts on the same loop). It binds ``host``
  (loopback only) on ``port`` (``0``: a free port chosen at once, so ``url`` is known
  before the server starts).
- A preview requires a token signed with a random key of its own, kept only in the
  kernel: ``preview.headers`` carries a fresh one. Other users of the same machine (a
  shared lab server) get 401, whatever port they find.
- Inside Jupyter, a running preview is registered for the user's Jupyter server
  (``kailash_nb.notebook.lab_previews``): with the ``kailash_nb.labserver`` extension,
  ``{base_url}kailash-nb/previews/PORT/docs`` and the preview's routes open through the
  server, behind Jupyter's own login. The registration ends when the preview stops.
- Inside ``kailash-nb serve`` (``serving()``), ``preview`` is ignored: only the mark counts.
- ``mcp=True`` (``--mcp``) also serves the gateway's workflows as Model Context Protocol
  tools (``create_gateway(mcp=True)``): the preview at once (``preview.mcp_url``, with
  ``preview.headers``), ``kailash-nb serve`` when it serves the notebook. MCP is on for
  the whole gateway, so every published workflow is a tool there; publishing a workflow
  again without ``mcp`` drops its request.

``published()`` and ``preview_address()`` say what is published and where the preview
listens; ``add_publication_listener`` tells followers (the lab sidebar) when either
changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kailash_nb.hosts import is_loopback
from kailash_nb.notebook import session as _session
from kailash_nb.notebook.display import is_deterministic
from kailash_nb.notebook.errors import NotebookError

if TYPE_CHECKING:
    from kailash_nb.notebook.lab_previews import Registration

__all__ = [
    "PreviewAddress",
    "Publication",
    "add_publication_listener",
    "build_published",
    "preview_address",
    "publish",
    "published",
    "reset",
    "route_name",
    "serves_mcp",
    "serving",
]

logger = logging.getLogger(__name__)

#: Who a preview's tokens are issued to.
_PREVIEW_SUBJECT = "notebook"
_PREVIEW_TENANT = "default"
_MEMORY_STORE = "sqlite://"

_ROUTE = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: workflow name -> route, in publish order.
_published: dict[str, str] = {}
#: Names of the workflows published with ``mcp=True``.
_mcp: set[str] = set()
_serving: list[bool] = []


@dataclass(frozen=True)
class PreviewAddress:
    """Where the running preview listens and which routes it serves.

    Attributes:
        host: the loopback address it binds.
        port: its port.
        served: ``{workflow name: route}`` of the workflows it serves (those published
            when it started).
    """

    host: str
    port: int
    served: Mapping[str, str]

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``."""
        return f"http://{self.host}:{self.port}"


@dataclass
class _Preview:
    gateway: Any
    loop: asyncio.AbstractEventLoop
    address: PreviewAddress
    task: asyncio.Task[Any] | None = None
    #: Its registry file for the Jupyter server, once it listens (None outside Jupyter).
    registration: Registration | None = None

    def unregister(self) -> None:
        if self.registration is not None:
            self.registration.remove()
            self.registration = None


_preview: list[_Preview] = []
#: Called with no arguments after a publish mark or the preview changes (see
#: ``add_publication_listener``).
_publication_listeners: list[Callable[[], Any]] = []


@dataclass(eq=False)
class Publication:
    """What ``publish`` returns: the route, and the preview's address when one runs.

    Attributes:
        workflow: the notebook workflow's name.
        route: the served name (``POST /workflows/{route}/execute``).
        url: the preview's execute URL (``http://127.0.0.1:PORT/workflows/ROUTE/execute``),
            or ``None`` without a preview.
        base_url: the preview gateway's root URL, or ``None``.
        mcp_url: the preview's MCP streamable HTTP endpoint (``BASE/mcp``; the
            WebSocket is ``ws://.../mcp/ws``) when it serves MCP, else ``None``.

    A preview answers only requests carrying a token of its own (``headers``): another
    user of the same machine reaching its port gets 401.
    """

    workflow: str
    route: str
    url: str | None = None
    base_url: str | None = None
    mcp_url: str | None = None
    _task: asyncio.Task[Any] | None = field(default=None, repr=False)
    _gateway: Any = field(default=None, repr=False)

    async def ready(self) -> Publication:
        """Wait until the preview server listens (raises what kept it from starting)."""
        if self._task is not None:
            await asyncio.shield(self._task)
        return self

    async def stop(self) -> None:
        """Stop the preview server (nothing happens without one)."""
        if self._gateway is None:
            return
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._task)
        if _preview and _preview[0].gateway is self._gateway:
            _preview.pop().unregister()
            _notify_publications()
        await self._gateway.stop()

    @property
    def headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer ..."}`` for a request to the preview: a fresh access
        token of the preview's own signing key (a random one per preview), so it is
        valid whenever it is read. Empty without a preview."""
        if self._gateway is None or self._gateway.auth is None:
            return {}
        pair = self._gateway.auth.issue_tokens(
            _PREVIEW_SUBJECT, tenant_id=_PREVIEW_TENANT, roles=()
        )
        return {"Authorization": f"Bearer {pair.access_token}"}

    def __repr__(self) -> str:
        text = f"Published workflow {self.workflow!r} as POST /workflows/{self.route}/execute"
        if self.url is None:
            return text
        url = self.url
        if is_deterministic():
            url = re.sub(r"^(http://[^/]+):\d+", r"\1:<port>", url)
        return (
            f"{text}\npreview (this machine only; send headers=preview.headers, its own "
            f"token): POST {url}"
            + (f"\nMCP tools: {url.split('/workflows/')[0]}/mcp" if self.mcp_url else "")
        )


@contextlib.contextmanager
def serving() -> Iterator[None]:
    """While active, ``publish`` only records marks: previews are not started."""
    _serving.append(True)
    try:
        yield
    finally:
        _serving.pop()


def published() -> dict[str, str]:
    """The published workflows: ``{workflow name: route}`` in publish order (a copy)."""
    return dict(_published)


def serves_mcp() -> bool:
    """Whether a published workflow asked for MCP (``publish(..., mcp=True)``): the
    served gateway then serves its workflows as MCP tools."""
    return bool(_mcp)


def preview_address() -> PreviewAddress | None:
    """Where the preview listens, or ``None`` without one (or when it failed to start)."""
    if not _preview:
        return None
    task = _preview[0].task
    if task is not None and task.done() and (task.cancelled() or task.exception() is not None):
        return None
    return _preview[0].address


def add_publication_listener(callback: Callable[[], Any]) -> Callable[[], None]:
    """Call ``callback()`` after a workflow is published, a preview starts, stops or
    fails to start, and after ``reset``; returns a function that removes it.

    Callbacks run in the thread that made the change (the kernel's, for a preview
    stopping or failing); a failing callback is logged and does not stop the others.
    """
    _publication_listeners.append(callback)

    def remove() -> None:
        if callback in _publication_listeners:
            _publication_listeners.remove(callback)

    return remove


def reset() -> None:
    """Forget every mark and stop the preview server (scheduled on its loop if running)."""
    _published.clear()
    _mcp.clear()
    if _preview:
        old = _preview.pop()
        old.unregister()
        if old.loop.is_running():
            old.loop.call_soon_threadsafe(lambda: old.loop.create_task(old.gateway.stop()))
    _notify_publications()


def route_name(route: str) -> str:
    """``route`` without a leading ``/``, checked against ``^[A-Za-z0-9_-]{1,64}$``.

    Raises:
        NotebookError: the route is not a valid served name.
    """
    name = route[1:] if isinstance(route, str) and route.startswith("/") else route
    if not isinstance(name, str) or not _ROUTE.fullmatch(name):
        raise NotebookError(
            f"route {route!r:.80} must be 1-64 ASCII letters, digits, '_' or '-' (an optional "
            "leading '/' is ignored), as in --route /pricing"
        )
    return name


def publish(
    name: str | None = None,
    *,
    route: str | None = None,
    preview: bool = False,
    host: str = "127.0.0.1",
    port: int = 0,
    mcp: bool = False,
) -> Publication:
    """Mark the notebook workflow ``name`` (default: the current one) as served at
    ``route`` and, with ``preview=True``, serve it now inside the running event loop;
    ``mcp=True`` serves the gateway's workflows as MCP tools too.

    See the module docstring for the exact semantics.

    Raises:
        NotebookError: unknown workflow, no nodes, bad route, a route taken by another
            workflow, or a preview requested without a running event loop.
        KailashException: the workflow does not build (the gateway's errors too).
    """
    if not isinstance(mcp, bool):
        raise NotebookError(f"mcp must be True or False, got {mcp!r}")
    session = _find(name)
    served = route_name(route if route is not None else session.name)
    for other, taken in _published.items():
        if taken == served and other != session.name:
            raise NotebookError(
                f"route {served!r} already serves workflow {other!r}; choose another route"
            )
    if not session.definitions:
        raise NotebookError(f"workflow {session.name!r} has no nodes to publish")
    session.build()
    _published.pop(session.name, None)
    _published[session.name] = served
    if mcp:
        _mcp.add(session.name)
    else:
        _mcp.discard(session.name)
    if not preview or _serving:
        publication = Publication(session.name, served)
    else:
        publication = _start_preview(session.name, served, host, port)
    _notify_publications()
    return publication


def build_published() -> dict[str, Any]:
    """``{route: built Workflow}`` for every published workflow, as it is now.

    Raises:
        NotebookError: a published workflow no longer exists or has no nodes.
    """
    workflows = {}
    for name, served in _published.items():
        session = _find(name)
        workflows[served] = session.build()
    return workflows


def _find(name: str | None) -> _session.WorkflowSession:
    return _session.current() if name is None else _session.find(name)


def _start_preview(name: str, served: str, host: str, port: int) -> Publication:
    from kailash_nb.middleware.auth import KailashJWTAuth
    from kailash_nb.middleware.gateway import create_gateway
    from kailash_nb.security.config import SecurityConfig

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise NotebookError(
            "preview=True needs a running event loop (a Jupyter kernel, or a coroutine); "
            "without one, publish without a preview and run `kailash-nb serve NOTEBOOK.ipynb`"
        ) from None
    # A signing key of its own, never stored: only this kernel can mint its tokens, so
    # other users of the machine (a shared lab server) cannot call its workflows.
    security = SecurityConfig(jwt_secret=secrets.token_urlsafe(48), enable_rate_limiting=False)
    mcp = serves_mcp()
    gateway = create_gateway(
        title=f"kailash_nb preview: {served}", security_config=security, mcp=mcp
    )
    # Its token sessions live as long as the preview, in memory, not in the user's store.
    gateway.auth = KailashJWTAuth(config=security, store_url=_MEMORY_STORE)
    for workflow_name, route in _published.items():
        # A preview answers only its own kernel's user (loopback, its own token): show
        # them what their failing nodes raised.
        gateway.register_workflow(
            route,
            _find(workflow_name).build(),
            description=f"notebook workflow {workflow_name!r}",
            expose_errors=True,
        )
    if not is_loopback(host):
        raise NotebookError(
            f"a preview serves this kernel's user only, so only on loopback, not {host!r}; "
            "to serve others run `kailash-nb serve` with KAILASH_NB_JWT_SECRET set"
        )
    if port == 0:
        port = _free_port(host)
    old = _preview.pop() if _preview else None
    routes = [(workflow_name, route) for workflow_name, route in _published.items()]
    new = _Preview(gateway, loop, PreviewAddress(host, port, dict(_published)))
    new.task = task = loop.create_task(_replace(old, new, host, port, routes))
    task.add_done_callback(_report_failure)
    _preview.append(new)
    base = f"http://{host}:{port}"
    mcp_url = f"{base}/mcp" if mcp else None
    return Publication(
        name, served, f"{base}/workflows/{served}/execute", base, mcp_url, task, gateway
    )


async def _replace(
    old: _Preview | None, new: _Preview, host: str, port: int, routes: list[tuple[str, str]]
) -> int:
    if old is not None:
        old.unregister()
        try:
            await old.gateway.stop()
        except Exception:  # the old loop may be gone; its server must not block the new one
            logger.warning("could not stop the previous preview cleanly", exc_info=True)
    # The gateway warns that it serves without authentication: the preview's repr says
    # so, and a warning logged between two cells would land in a random cell's output.
    gateway_logger = logging.getLogger("kailash_nb.middleware.gateway")
    level = gateway_logger.level
    gateway_logger.setLevel(logging.ERROR)
    try:
        bound = int(await new.gateway.start(host, port))
    finally:
        gateway_logger.setLevel(level)
    if _preview and _preview[-1] is new:  # not stopped or replaced meanwhile
        new.registration = _register(new.gateway, host, bound, routes)
    return bound


def _register(gateway: Any, host: str, port: int, routes: list[tuple[str, str]]) -> Any:
    from kailash_nb.notebook import lab_previews

    try:
        return lab_previews.register(
            port=port,
            host=host,
            workflows=routes,
            security=gateway.auth.config,
            subject=_PREVIEW_SUBJECT,
            tenant_id=_PREVIEW_TENANT,
        )
    except OSError as error:
        # The preview itself serves; only opening it through the Jupyter server fails.
        logger.warning(
            "the preview on port %d serves, but could not be registered for the Jupyter "
            "server (%s): open it directly with preview.headers",
            port,
            error,
        )
        return None


def _report_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the publish preview did not start: %s", task.exception())
        if _preview and _preview[0].task is task:
            _notify_publications()


def _notify_publications() -> None:
    for callback in list(_publication_listeners):
        try:
            callback()
        except Exception:
            logger.exception("publication listener %r failed", callback)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
