"""Code nodes: a Python snippet or function as a workflow step.

``PythonCodeNode(code="result = x + 1")`` runs the snippet with its inputs as
variables and returns ``{"result": ...}``. They are defined in
``kailash_nb.nodes.code.python``; ``kailash_nb.nodes.code.async_python`` is
Kailash's path of ``AsyncPythonCodeNode``.
"""

from kailash_nb.nodes.code import python as _python
from kailash_nb.nodes.code.python import *  # noqa: F403

__all__ = list(_python.__all__)
