"""Kailash's module path of ``SQLDatabaseNode`` (defined in ``kailash_nb.nodes.data``)."""

from kailash_nb.nodes.data._nodes import SQLDatabaseNode

__all__ = ["SQLDatabaseNode"]
