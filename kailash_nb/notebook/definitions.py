"""``NodeDefinition``: one node as a notebook cell defined it.

A definition is declarative: what the node runs (a function, or a registered type
with its config), the inputs it takes from named nodes, the name of its primary
output and the cell that defined it. The session wires definitions together
whenever something changes, so re-running a cell simply swaps one definition for
another. A definition keeps its function's fingerprint while everything the function
reads is the same objects (see ``fingerprint.function_dependencies``).
"""

from __future__ import annotations

import inspect
import os
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kailash_nb.nodes.node import Node
from kailash_nb.notebook.errors import NotebookError
from kailash_nb.notebook.fingerprint import (
    combine,
    fingerprint_function,
    fingerprint_value,
    function_dependencies,
)
from kailash_nb.notebook.function_node import DEFAULT_OUTPUT, function_node
from kailash_nb.notebook.refs import OutputRef, parse_output_ref
from kailash_nb.sdk_exceptions import close_matches

__all__ = ["NodeDefinition", "cell_label", "defining_cell", "running_cell_number"]


@dataclass
class NodeDefinition:
    """One node of a notebook workflow.

    Attributes:
        node_id: the node's id.
        node_type: the registered type name (``PythonCodeNode`` for functions).
        function: the function a function node calls, else ``None``.
        config: a typed node's configuration (empty for function nodes).
        inputs: explicit inputs, ``{input name: OutputRef}``.
        output: the primary output: the one a reference without an output means.
        cell: where it was defined (``"In [3]"`` or ``"file.py:12"``), when known.
    """

    node_id: str
    node_type: str
    function: Callable[..., Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, OutputRef] = field(default_factory=dict)
    output: str = DEFAULT_OUTPUT
    cell: str | None = None
    # The last fingerprint of ``function`` and the objects it was computed from.
    _digested: tuple[tuple[Any, ...], str] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _signed: tuple[tuple[Any, ...], inspect.Signature] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def for_function(
        cls,
        function: Callable[..., Any],
        node_id: str | None = None,
        inputs: Mapping[str, str] | None = None,
        output: str | None = None,
        cell: str | None = None,
    ) -> NodeDefinition:
        """Define a function node; the id defaults to the function's name.

        Raises:
            NotebookError: not callable, no usable id, or an explicit input that is
                not one of the function's parameters.
        """
        if not callable(function):
            raise NotebookError(f"@node needs a function, got {type(function).__name__}")
        node_id = node_id or getattr(function, "__name__", None)
        if not node_id or node_id == "<lambda>":
            raise NotebookError("give the node an id: node('my_id')(function)")
        node = function_node(function, output or DEFAULT_OUTPUT)
        definition = cls(
            node_id=node_id,
            node_type=node.type_name(),
            function=function,
            inputs=_parse_inputs(node_id, inputs),
            output=output or DEFAULT_OUTPUT,
            cell=cell if cell is not None else defining_cell(function),
        )
        if not node.accepts_extra_inputs:
            names = definition.parameter_names()
            for name in definition.inputs:
                if name not in names:
                    raise NotebookError(
                        f"node {node_id!r}: inputs names {name!r}, which is not a parameter of "
                        f"{getattr(function, '__name__', 'the function')}()"
                        f"{close_matches(name, names)}; its parameters are {names}"
                    )
        return definition

    @classmethod
    def for_type(
        cls,
        node_type: str,
        node_id: str,
        config: Mapping[str, Any] | None = None,
        inputs: Mapping[str, str] | None = None,
        output: str | None = None,
        cell: str | None = None,
    ) -> NodeDefinition:
        """Define a node of a registered type with its configuration.

        Raises:
            NotebookError: config is not a mapping, or a bad input reference.
        """
        if config is not None and not isinstance(config, Mapping):
            raise NotebookError(
                f"node {node_id!r}: the config of a {node_type} node must be a mapping of "
                f"parameter names to values, got {type(config).__name__}"
            )
        if output is not None and not (isinstance(output, str) and output.isidentifier()):
            raise NotebookError(f"node {node_id!r}: output name {output!r} must be an identifier")
        return cls(
            node_id=node_id,
            node_type=node_type,
            config=dict(config or {}),
            inputs=_parse_inputs(node_id, inputs),
            output=output or DEFAULT_OUTPUT,
            cell=cell if cell is not None else defining_cell(None),
        )

    def builder_node(self) -> str | Node:
        """What ``WorkflowBuilder.add_node`` takes for this definition."""
        if self.function is not None:
            return function_node(self.function, self.output)
        return self.node_type

    def parameter_names(self) -> list[str]:
        """A function node's named parameters (no ``*args``/``**kwargs``)."""
        return list(self.defaults(all_parameters=True))

    def defaults(self, *, all_parameters: bool = False) -> dict[str, Any]:
        """Default values of the function's parameters (with ``all_parameters``,
        parameters without a default map to ``inspect.Parameter.empty``)."""
        if self.function is None:
            return {}
        signature = self._signature()
        if signature is None:
            return {}
        return {
            name: parameter.default
            for name, parameter in signature.parameters.items()
            if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
            and (all_parameters or parameter.default is not parameter.empty)
        }

    def _signature(self) -> inspect.Signature | None:
        """``inspect.signature`` of the function, kept while a plain function's code
        and defaults are the same objects (a wrapper is inspected every time)."""
        function = self.function
        plain = isinstance(function, types.FunctionType) and not function.__dict__
        key = (
            (function.__code__, function.__defaults__, function.__kwdefaults__)  # type: ignore[union-attr]
            if plain
            else None
        )
        cached = self._signed
        if (
            key is not None
            and cached is not None
            and all(a is b for a, b in zip(cached[0], key, strict=True))
        ):
            return cached[1]
        try:
            signature = inspect.signature(function)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        self._signed = None if key is None else (key, signature)
        return signature

    def digest(self, memo: dict[int, str]) -> str:
        """Fingerprint of what this node runs (function or config) and its output name."""
        if self.function is None:
            return combine(self.node_type, self.output, fingerprint_value(self.config, memo))
        return self._function_digest(memo)

    def _function_digest(self, memo: dict[int, str]) -> str:
        """The node's digest with its function's fingerprint, reused while everything
        the function reads is the same objects and none of them can change in place
        (else digested again)."""
        dependencies = function_dependencies(self.function)  # type: ignore[arg-type]
        cached = self._digested
        if (
            dependencies is not None
            and cached is not None
            and len(cached[0]) == len(dependencies)
            and all(a is b for a, b in zip(cached[0], dependencies, strict=True))
        ):
            return cached[1]
        # A fresh memo: a reused digest must not depend on what was digested before it.
        function_digest = fingerprint_function(
            self.function,  # type: ignore[arg-type]
            {} if dependencies is not None else memo,
        )
        digest = combine(self.node_type, self.output, function_digest)
        self._digested = None if dependencies is None else (dependencies, digest)
        return digest


def defining_cell(function: Callable[..., Any] | None) -> str | None:
    """Where a node is being defined: ``"In [n]"`` for code from an IPython cell,
    else ``"file.py:line"``, else ``None``.

    A function names the cell (or file) its ``def`` ran in; without one, the
    nearest calling cell, or the nearest caller outside kailash_nb, is used.
    """
    cells = _cell_numbers()
    code = getattr(function, "__code__", None)
    if code is not None:
        number = cells.get(code.co_filename)
        if number:
            return f"In [{number}]"
        return f"{Path(code.co_filename).name}:{code.co_firstlineno}"
    fallback = None
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if cells.get(filename):
            return f"In [{cells[filename]}]"
        if fallback is None and not filename.startswith(_PACKAGE_DIR):
            fallback = f"{Path(filename).name}:{frame.f_lineno}"
        frame = frame.f_back
    return fallback


def cell_label(filename: str) -> str | None:
    """``"In [n]"`` when ``filename`` is the file IPython compiled cell ``n`` under,
    else ``None``."""
    number = _cell_numbers().get(filename)
    return f"In [{number}]" if number else None


def running_cell_number() -> int | None:
    """The number the notebook shows for the cell running now (its ``In [n]``), or
    ``None`` when no notebook cell is on the call stack.

    Read from the cell's own code on the stack, never from the shell's counter: IPython
    releases differ on whether ``execution_count`` already holds the next cell's number
    while a cell runs (9.19 increments it before running the cell).
    """
    cells = _cell_numbers()
    frame = sys._getframe(1)
    while frame is not None:
        number = cells.get(frame.f_code.co_filename)
        if number:
            return int(number)
        frame = frame.f_back
    return None


_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent) + os.sep


def _cell_numbers() -> dict[str, int]:
    """IPython's map of cell file names to execution counts ({} outside IPython)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    numbers = getattr(getattr(shell, "compile", None), "_filename_map", None)
    return numbers if isinstance(numbers, dict) else {}


def _parse_inputs(node_id: str, inputs: Mapping[str, str] | None) -> dict[str, OutputRef]:
    if inputs is None:
        return {}
    if not isinstance(inputs, Mapping):
        raise NotebookError(
            f"node {node_id!r}: inputs must map input names to 'node' or 'node.output', "
            f"got {type(inputs).__name__}"
        )
    parsed = {}
    for name, reference in inputs.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise NotebookError(f"node {node_id!r}: input name {name!r} must be an identifier")
        parsed[name] = parse_output_ref(reference)
        if parsed[name].node_id == node_id:
            raise NotebookError(
                f"node {node_id!r}: input {name!r} cannot come from the node itself"
            )
    return parsed
