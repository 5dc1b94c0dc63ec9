"""The Jupyter server extension that opens a notebook's previews through the server.

A preview (``kn.publish(name, preview=True)``) listens on a random loopback port and
answers only tokens signed with its own key. Its kernel registers it in the user's
Jupyter runtime directory (``kailash_nb.notebook.lab_previews``); this extension, loaded
by the user's Jupyter server, serves behind Jupyter's own login:

- ``GET {base_url}kailash-nb/previews``: the live previews as a JSON list (port,
  workflows and routes, the proxied docs and API paths; no credentials);
- ``GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS {base_url}kailash-nb/previews/{port}/{path}``:
  the request forwarded to ``http://127.0.0.1:{port}/{path}``, only for registered ports,
  with the preview's credential instead of the browser's cookies and authorization.

So a browser opens ``{base_url}kailash-nb/previews/{port}/docs`` without the preview's
port being reachable or its token known. Enable it with::

    jupyter server --ServerApp.jpserver_extensions='{"kailash_nb.labserver": true}'

Only a Jupyter server loads this package; it needs ``jupyter_server``, which every
Jupyter server has.
"""

from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

__all__: list[str] = []


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where Jupyter finds the extension: this module."""
    return [{"module": "kailash_nb.labserver"}]


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    """Add the preview list and proxy handlers under ``serverapp``'s base URL."""
    from kailash_nb.labserver.handlers import preview_handlers

    web_app = serverapp.web_app
    web_app.add_handlers(
        ".*$", preview_handlers(web_app.settings["base_url"], serverapp.runtime_dir)
    )
    serverapp.log.info("kailash_nb.labserver: notebook previews served under kailash-nb/previews")
