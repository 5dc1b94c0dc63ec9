"""Data nodes: CSV and JSON files, SQL databases.

The nodes are defined in ``kailash_nb.nodes.data._nodes``; Kailash's module paths
``kailash_nb.nodes.data.readers``, ``.writers``, ``.sql`` and ``.async_sql`` name the
same classes.
"""

from kailash_nb.nodes.data import _nodes
from kailash_nb.nodes.data._nodes import *  # noqa: F403

__all__ = list(_nodes.__all__)
