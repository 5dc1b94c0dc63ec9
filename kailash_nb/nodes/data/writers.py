"""Kailash's module path of the file writers (defined in ``kailash_nb.nodes.data``)."""

from kailash_nb.nodes.data._nodes import CSVWriterNode, JSONWriterNode

__all__ = ["CSVWriterNode", "JSONWriterNode"]
