"""Data nodes: CSV, JSON and text files, SQL databases.

Most are defined in ``kailash_nb.nodes.data._nodes``, ``TextReaderNode`` in
``kailash_nb.nodes.data.readers``; Kailash's module paths ``kailash_nb.nodes.data.readers``,
``.writers``, ``.sql`` and ``.async_sql`` name the same classes.
"""

from kailash_nb.nodes.data import _nodes
from kailash_nb.nodes.data._nodes import *  # noqa: F403
from kailash_nb.nodes.data.readers import TextReaderNode

__all__ = [*_nodes.__all__, "TextReaderNode"]
