"""Kailash's module path of the file readers (defined in ``kailash_nb.nodes.data``)."""

from kailash_nb.nodes.data._nodes import CSVReaderNode, JSONReaderNode

__all__ = ["CSVReaderNode", "JSONReaderNode"]
