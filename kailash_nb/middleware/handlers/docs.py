"""``GET /openapi.json`` and ``GET /docs`` (when ``enable_docs`` and the docs page ships
with this install)."""

from __future__ import annotations

import functools
from importlib import resources

from kailash_nb.middleware.contract import operations
from kailash_nb.middleware.handlers.base import GatewayHandler
from kailash_nb.middleware.openapi import docs_content_security_policy

__all__ = ["DocsPageHandler", "OpenAPIHandler", "docs_available"]


def docs_available() -> bool:
    """True when the docs page ships with this install."""
    return resources.files("kailash_nb.middleware").joinpath("static/docs.html").is_file()


class OpenAPIHandler(GatewayHandler):
    """The OpenAPI 3.1 document of the served workflows."""

    route = "/openapi.json"
    contract = operations.serving(GET=operations.OPENAPI)
    requires_auth = False

    def get(self) -> None:
        """Answer the document of the registered workflows."""
        self.write_json(self.gateway.openapi_document())


class DocsPageHandler(GatewayHandler):
    """The interactive docs page (static HTML reading ``/openapi.json``)."""

    route = "/docs"
    contract = operations.serving(GET=operations.DOCS)
    requires_auth = False

    def get(self) -> None:
        """Serve ``static/docs.html`` with its ``Content-Security-Policy`` (its own inline
        script and style only; requests to its origin only), so the policy travels with
        the page through a proxy too."""
        page = resources.files("kailash_nb.middleware").joinpath("static/docs.html").read_bytes()
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", _docs_policy())
        self.finish(page)


@functools.cache
def _docs_policy() -> str:
    return docs_content_security_policy()
