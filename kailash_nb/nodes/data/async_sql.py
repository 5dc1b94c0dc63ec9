"""Kailash's module path of ``AsyncSQLDatabaseNode`` (defined in ``kailash_nb.nodes.data``)."""

from kailash_nb.nodes.data._nodes import AsyncSQLDatabaseNode

__all__ = ["AsyncSQLDatabaseNode"]
