"""What a function needs around it to run elsewhere: imports, constants, helpers.

``FunctionSources`` collects, for the functions given to it, the globals and
closure values their code reads, as ``import`` lines (modules and importable
objects), literal constants and the source of helper functions defined in the
notebook (recursively), so that the functions can be written into a code string
or a script and still run.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
import types
from dataclasses import dataclass, field
from typing import Any

from kailash_nb.notebook.errors import ExportError
from kailash_nb.notebook.fingerprint import global_names

__all__ = ["FunctionSources", "function_source", "is_literal"]

_LITERAL_TYPES = (type(None), bool, int, float, complex, str, bytes, list, tuple, dict, set)


def is_literal(value: Any) -> bool:
    """True for plain data whose ``repr`` reads back as an equal value."""
    if type(value) not in _LITERAL_TYPES:  # subclasses may carry more than their repr
        return False
    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def function_source(function: types.FunctionType) -> str:
    """The function's ``def`` (decorators removed), dedented.

    Raises:
        ExportError: the source is unavailable.
    """
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        raise ExportError(
            f"the source of {function.__qualname__}() is not available, so it cannot be "
            "exported; define it in a notebook cell or a file"
        ) from None
    tree = ast.parse(source)
    for statement in tree.body:
        if (
            isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef))
            and statement.name == function.__name__
        ):
            lines = source.splitlines()[statement.lineno - 1 : statement.end_lineno]
            return "\n".join(lines)
    raise ExportError(f"could not find the definition of {function.__name__}() in its source")


@dataclass
class FunctionSources:
    """What a set of functions needs around them: imports, constants, helpers."""

    imports: dict[str, str] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)
    _seen: dict[str, Any] = field(default_factory=dict)

    def names(self) -> set[str]:
        """Every name the collected code defines or imports."""
        return set(self.imports) | set(self.constants) | set(self.functions)

    def add(self, name: str, value: Any, node_id: str) -> None:
        """Make ``name`` mean ``value`` in the written code (``node_id`` for messages).

        Raises:
            ExportError: ``value`` cannot be written, or ``name`` already means
                something else.
        """
        if name in self._seen:
            if self._seen[name] is value or (
                name in self.constants and is_literal(value) and self.constants[name] == value
            ):
                return
            raise ExportError(
                f"node {node_id!r}: the name {name!r} means two different things in the "
                "functions being exported; rename one of them"
            )
        self._seen[name] = value
        if isinstance(value, types.ModuleType):
            module = value.__name__
            self.imports[name] = f"import {module}" + ("" if module == name else f" as {name}")
        elif _importable(value):
            qualname = value.__qualname__
            alias = "" if qualname == name else f" as {name}"
            self.imports[name] = f"from {value.__module__} import {qualname}{alias}"
        elif isinstance(value, types.FunctionType) and value.__name__ != "<lambda>":
            self._add_function(name, value, node_id)
        elif is_literal(value):
            self.constants[name] = value
        else:
            raise ExportError(
                f"node {node_id!r}: the code uses the global {name!r} "
                f"({type(value).__name__}), which cannot be written to a file; pass it as a "
                "parameter or create it inside the node function"
            )

    def _add_function(self, name: str, function: types.FunctionType, node_id: str) -> None:
        code = function.__code__
        source = function_source(function)
        # Defaults and annotations are evaluated where the def runs, outside its code.
        for global_name in [*global_names(code), *_signature_names(source)]:
            if global_name in function.__globals__ and global_name != function.__name__:
                self.add(global_name, function.__globals__[global_name], node_id)
        for free_name, cell in zip(code.co_freevars, function.__closure__ or (), strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell: nothing to carry
                continue
            self.add(free_name, value, node_id)
        if name != function.__name__:
            source += f"\n\n\n{name} = {function.__name__}"
        self.functions[name] = source

    def render(self) -> str:
        """The imports, constants and helper functions, as Python source."""
        parts = []
        if self.imports:
            parts.append("\n".join(sorted(set(self.imports.values()))))
        if self.constants:
            parts.append("\n".join(f"{n} = {v!r}" for n, v in self.constants.items()))
        parts.extend(self.functions.values())
        return "\n\n\n".join(parts)


def _signature_names(source: str) -> list[str]:
    """Names read by a def's defaults and annotations (evaluated when the def runs)."""
    definition = ast.parse(source).body[0]
    assert isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef))
    arguments = definition.args
    expressions: list[ast.expr | None] = [
        *arguments.defaults,
        *arguments.kw_defaults,
        definition.returns,
        *(
            argument.annotation
            for argument in (
                *arguments.posonlyargs,
                *arguments.args,
                *arguments.kwonlyargs,
                arguments.vararg,
                arguments.kwarg,
            )
            if argument is not None
        ),
    ]
    names: dict[str, None] = {}
    for expression in expressions:
        if expression is not None:
            for node in ast.walk(expression):
                if isinstance(node, ast.Name):
                    names[node.id] = None
    return list(names)


def _importable(value: Any) -> bool:
    module_name = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not module_name or not qualname or module_name == "__main__" or "<" in qualname:
        return False
    if not isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return False
    if isinstance(value, types.FunctionType) and _defined_in_notebook(value):
        return False
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return False
    return target is value


def _defined_in_notebook(function: types.FunctionType) -> bool:
    filename = function.__code__.co_filename
    return filename.startswith("<") or "ipykernel_" in filename
