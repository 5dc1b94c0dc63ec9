"""Kailash's module path of ``AsyncPythonCodeNode`` (defined in ``nodes.code.python``)."""

from kailash_nb.nodes.code.python import AsyncPythonCodeNode

__all__ = ["AsyncPythonCodeNode"]
