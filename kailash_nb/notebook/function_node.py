"""Function nodes with a named output: ``function_node(fn, output="summary")``.

``PythonCodeNode.from_function(fn)`` publishes the return value as ``result``. A
notebook node may name its output instead (``@kn.node(output="summary")``); then
the return value is published as ``summary`` and there is no ``result`` output,
exactly like a code snippet that assigns ``summary``. Exported scripts use the
same factory, so a notebook workflow and its export produce the same outputs::

    node = function_node(summarize, output="summary")
    node.execute(rows=[1, 2])   # {"summary": ...}
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from kailash_nb.nodes.code import AsyncPythonCodeNode, PythonCodeNode
from kailash_nb.sdk_exceptions import NodeConfigurationError

__all__ = ["DEFAULT_OUTPUT", "function_node"]

#: The output a function node publishes its return value under by default.
DEFAULT_OUTPUT = "result"
# Config key carrying the output name; a leading underscore keeps it clear of the
# function's own parameter names.
_OUTPUT_KEY = "_output"


class _NamedOutput:
    """Publishes the function's return value under ``config["_output"]``."""

    config: dict[str, Any]
    config_only_keys: ClassVar[frozenset[str]] = PythonCodeNode.config_only_keys | {_OUTPUT_KEY}

    def _wrap_return(self, value: Any) -> dict[str, Any]:
        return {self.config[_OUTPUT_KEY]: value}


class NamedOutputCodeNode(_NamedOutput, PythonCodeNode):
    """A ``PythonCodeNode`` in function mode whose single output has a chosen name."""

    @classmethod
    def type_name(cls) -> str:
        """Reported as ``PythonCodeNode``: it is one, with a renamed output."""
        return "PythonCodeNode"


class AsyncNamedOutputCodeNode(_NamedOutput, AsyncPythonCodeNode):
    """The ``async def`` twin of ``NamedOutputCodeNode``."""

    @classmethod
    def type_name(cls) -> str:
        """Reported as ``AsyncPythonCodeNode``."""
        return "AsyncPythonCodeNode"


def function_node(function: Callable[..., Any], output: str = DEFAULT_OUTPUT) -> PythonCodeNode:
    """A code node calling ``function`` whose return value is the output ``output``.

    ``async def`` functions give an ``AsyncPythonCodeNode``. With the default
    output name this is exactly ``PythonCodeNode.from_function(function)`` (a
    returned dict that has a ``"result"`` key is then taken as several outputs).

    Raises:
        NodeConfigurationError: ``output`` is not an identifier, or the function
            cannot be a node (``*args``, not callable).
    """
    if not isinstance(output, str) or not output.isidentifier():
        raise NodeConfigurationError(
            f"output name {output!r} must be a Python identifier, such as 'summary'"
        )
    if output == DEFAULT_OUTPUT:
        return PythonCodeNode.from_function(function)
    node_class = (
        AsyncNamedOutputCodeNode if inspect.iscoroutinefunction(function) else NamedOutputCodeNode
    )
    return node_class(
        name=getattr(function, "__name__", None), function=function, **{_OUTPUT_KEY: output}
    )
