"""``kailash-nb serve``'s settings from the environment, for containers.

A container image is configured by environment variables (a Kubernetes ConfigMap, ``docker
run -e``), so every ``serve`` option has one: the notebook, the host, the port and the
number of workers. An option given on the command line wins over its variable, which wins
over the built-in default; with none of them set ``serve`` behaves as it always did.
``KAILASH_NB_DATABASE_URL`` (the store) and ``KAILASH_NB_REDIS_URL`` (shared rate
limits) are read by the gateway itself.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from kailash_nb.cli.errors import CommandError, UsageError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_WORKERS",
    "SERVE_ENV",
    "resolve_serve_options",
]

#: The environment variable of each ``serve`` option (attribute of the parsed arguments).
SERVE_ENV: Mapping[str, str] = {
    "notebook": "KAILASH_NB_NOTEBOOK",
    "host": "KAILASH_NB_HOST",
    "port": "KAILASH_NB_PORT",
    "workers": "KAILASH_NB_WORKERS",
}
#: ``--host`` without the option or ``KAILASH_NB_HOST``: loopback only.
DEFAULT_HOST = "127.0.0.1"
#: ``--port`` without the option or ``KAILASH_NB_PORT``.
DEFAULT_PORT = 8000
#: ``--workers`` without the option or ``KAILASH_NB_WORKERS``.
DEFAULT_WORKERS = 1


def resolve_serve_options(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """Fill ``args``' unset ``serve`` options from ``environ`` (default ``os.environ``),
    then from the defaults; returns a new namespace.

    An empty variable counts as unset. Port and workers are checked as their options are
    (``--workers 0`` itself is refused later, by the gateway, as it always was).

    Raises:
        UsageError: no NOTEBOOK argument and no ``KAILASH_NB_NOTEBOOK``.
        CommandError: ``KAILASH_NB_PORT`` or ``KAILASH_NB_WORKERS`` is not a number in
            range; the message names the variable.
    """
    env = os.environ if environ is None else environ
    resolved = argparse.Namespace(**vars(args))
    if not resolved.notebook:
        resolved.notebook = env.get(SERVE_ENV["notebook"]) or None
    if resolved.notebook is None:
        raise UsageError(
            f"NOTEBOOK is required: pass the .ipynb path or set {SERVE_ENV['notebook']}"
        )
    if resolved.host is None:
        resolved.host = env.get(SERVE_ENV["host"]) or DEFAULT_HOST
    if resolved.port is None:
        resolved.port = _env_int(env, SERVE_ENV["port"], DEFAULT_PORT, 1, 65535)
    if resolved.workers is None:
        resolved.workers = _env_int(env, SERVE_ENV["workers"], DEFAULT_WORKERS, 1, None)
    return resolved


def _env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise CommandError(f"{name} must be a whole number, got {text!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise CommandError(f"{name} must be {bounds}, got {value}")
    return value
