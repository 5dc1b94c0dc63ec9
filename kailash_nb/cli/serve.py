"""``kailash-nb serve NOTEBOOK.ipynb``: serve a notebook's published workflows.

The notebook file is the source of truth: its code cells run in order in a fresh
IPython shell in this process (from the notebook's directory, which is also put on
``sys.path``, as Jupyter does), display-only statements skipped (see
``kailash_nb.notebook.serve_cells``); every workflow a cell published with
``%kailash publish`` / ``kn.publish`` is then registered on ``create_gateway`` and
served until SIGTERM/SIGINT. Each request runs on a fresh runtime. ``--workers N``
serves from N forked worker processes sharing the port (``create_gateway``'s
``worker_processes``).

Each option also has an environment variable, for container images
(``kailash_nb.cli.serve_env``): ``KAILASH_NB_NOTEBOOK``, ``KAILASH_NB_HOST``,
``KAILASH_NB_PORT``, ``KAILASH_NB_WORKERS``; ``--database-url`` defaults to
``KAILASH_NB_DATABASE_URL``. An option on the command line wins over its variable.

``--mcp`` (or a cell that published with ``%kailash publish NAME --mcp``) also serves
every published workflow as a Model Context Protocol tool: streamable HTTP at ``/mcp``,
a WebSocket at ``/mcp/ws`` (``create_gateway(mcp=True)``), with the same tokens.

Authentication: with ``KAILASH_NB_JWT_SECRET`` set (at least 32 random bytes), the
gateway gets ``SecurityConfig(jwt_secret=...)`` and every workflow call needs a bearer
token; without it the gateway serves without authentication and only on a loopback
host (a non-loopback ``--host`` is refused before any cell runs). Users and sessions
live in the store (``KAILASH_NB_DATABASE_URL``): create users there with
``kailash-nb users add USERNAME --tenant TENANT [--role ROLE ...]`` (or
``KailashJWTAuth(config=SecurityConfig(jwt_secret=...), store_url=...).add_user(...)``);
callers get tokens from ``POST /auth/token`` with ``{"username", "password"}``::

    KAILASH_NB_JWT_SECRET=$(python -c "import secrets; print(secrets.token_urlsafe(48))") \
        kailash-nb serve pricing.ipynb --host 0.0.0.0 --port 8000
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from kailash_nb.cli.arguments import add_database_option
from kailash_nb.cli.serve_env import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_WORKERS,
    SERVE_ENV,
    resolve_serve_options,
)
from kailash_nb.hosts import is_loopback

__all__ = ["JWT_SECRET_ENV", "add_parser", "port_number", "serve"]

#: Environment variable holding the gateway's HS256 signing secret.
JWT_SECRET_ENV = "KAILASH_NB_JWT_SECRET"  # noqa: S105 - a variable name, not a secret


def add_parser(commands_parser: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``serve`` subcommand to ``kailash-nb``."""
    serve_parser = commands_parser.add_parser(
        "serve",
        help="serve the workflows a notebook publishes",
        description="Run NOTEBOOK's code cells in a fresh IPython shell (skipping "
        "%kailash show/run/status/export, kn.show()/kn.run()/kn.status()/kn.export() and "
        "what only uses their results), then serve every workflow published with "
        "%kailash publish over HTTP. "
        f"Set {JWT_SECRET_ENV} to require tokens; without it the gateway serves "
        "without authentication on loopback only.",
    )
    serve_parser.add_argument(
        "notebook",
        metavar="NOTEBOOK",
        nargs="?",
        help=f"path of the .ipynb file (default: ${SERVE_ENV['notebook']})",
    )
    serve_parser.add_argument("--host", help=f"default ${SERVE_ENV['host']}, else {DEFAULT_HOST}")
    serve_parser.add_argument(
        "--port",
        type=port_number,
        help=f"1-65535, default ${SERVE_ENV['port']}, else {DEFAULT_PORT}",
    )
    serve_parser.add_argument(
        "--workers",
        type=int,
        help=f"worker processes sharing the port (default ${SERVE_ENV['workers']}, else "
        f"{DEFAULT_WORKERS}); with several, set "
        "KAILASH_NB_REDIS_URL for one global rate limit (else it is split over the workers)",
    )
    serve_parser.add_argument(
        "--mcp",
        action="store_true",
        help="also serve the workflows as Model Context Protocol tools at /mcp (streamable "
        "HTTP) and /mcp/ws (WebSocket); on without it when a cell published with --mcp",
    )
    add_database_option(serve_parser, "the store of users, sessions and run history")
    serve_parser.set_defaults(handler=serve)


def port_number(text: str) -> int:
    """``--port``: a TCP port, 1-65535 (argparse type)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {port}")
    return port


def serve(args: argparse.Namespace) -> int:
    """Build the notebook's published workflows and serve them (blocking)."""
    from kailash_nb.middleware.gateway import create_gateway
    from kailash_nb.notebook.serving import NotebookServeError, load_notebook
    from kailash_nb.security.config import SecurityConfig

    args = resolve_serve_options(args)
    path = Path(args.notebook).resolve()
    if not path.is_file():
        raise NotebookServeError(f"no notebook file {args.notebook!r}")
    secret = os.environ.get(JWT_SECRET_ENV)
    security = _security_config(SecurityConfig, secret) if secret else None
    if security is None and not is_loopback(args.host):
        raise NotebookServeError(
            f"refusing to serve on {args.host!r} without authentication: set {JWT_SECRET_ENV} "
            "(at least 32 random bytes), or serve on 127.0.0.1"
        )
    # A bad --workers is refused (GatewayConfigurationError) before any cell runs; the
    # workers are forked by run() after the cells ran, so each serves the same workflows.
    gateway = create_gateway(
        title=f"{path.stem} (kailash-nb serve)",
        security_config=security,
        worker_processes=args.workers,
        database_url=args.database_url,
        mcp=bool(getattr(args, "mcp", False)),
    )
    _check_port_free(args.host, args.port)  # before the cells run, which may take long
    os.chdir(path.parent)
    sys.path.insert(0, str(path.parent))
    loaded = load_notebook(path)
    for line in loaded.skipped:
        print(f"skipped {line}", file=sys.stderr)
    for route, workflow in loaded.workflows.items():
        gateway.register_workflow(
            route, workflow, description=f"notebook workflow {loaded.sources[route]!r}"
        )
        print(f"serving POST /workflows/{route}/execute", file=sys.stderr)
    if loaded.mcp and not gateway.settings.mcp:
        gateway.serve_mcp()  # a cell published with --mcp
    if gateway.settings.mcp:
        print("serving MCP tools at /mcp (streamable HTTP) and /mcp/ws", file=sys.stderr)
    print(f"{path.name} on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    if args.workers > 1:
        _stop_shell_threads()
    try:
        gateway.run(args.host, args.port)
    except OSError as exc:
        raise NotebookServeError(_listen_error(args.host, args.port, exc)) from None
    return 0


def _security_config(config_class: type, secret: str) -> object:
    """``SecurityConfig(jwt_secret=secret)``, its refusal as one line naming the variable."""
    from pydantic import ValidationError

    from kailash_nb.notebook.serving import NotebookServeError

    try:
        return config_class(jwt_secret=secret)
    except ValidationError as exc:
        reasons = "; ".join(
            str(error["msg"]).removeprefix("Value error, ") for error in exc.errors()
        )
        raise NotebookServeError(f"{JWT_SECRET_ENV} is refused: {reasons}") from None


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on, naming it (the bind is retried when
    serving starts; this only saves running every cell first)."""
    import socket

    from kailash_nb.notebook.serving import NotebookServeError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise NotebookServeError(f"cannot serve on host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise NotebookServeError(_listen_error(host, port, exc)) from None


def _listen_error(host: str, port: int, exc: OSError) -> str:
    import errno

    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use; stop what listens there or pass --port"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def _stop_shell_threads() -> None:
    """Stop the notebook shell's history thread before the workers fork: the cells have
    run, and a thread does not survive ``fork`` (the gateway warns about any left)."""
    from IPython.core.interactiveshell import InteractiveShell

    if not InteractiveShell.initialized():
        return
    history = InteractiveShell.instance().history_manager
    save_thread = getattr(history, "save_thread", None)
    if save_thread is not None:
        save_thread.stop()
