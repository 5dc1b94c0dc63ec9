"""Which statements of a notebook ``kailash-nb serve`` and ``kailash-nb run`` run, and
which they skip.

``serve`` and ``run`` re-execute the notebook's code cells in order: the cells are the
source of truth. They skip only what displays, exercises or exports the workflow instead
of defining it, deciding per *top-level statement* of each cell (after IPython turns
magics into ``get_ipython().run_line_magic(...)`` calls):

1. **Display-only and side-effect statements** are dropped: ``%kailash show``,
   ``%kailash run ...``, ``%kailash status``, ``%kailash export ...`` and top-level
   calls of ``kn.show``, ``kn.run``, ``kn.run_async``, ``kn.status`` and ``kn.export``
   (however the module or function was imported), alone, awaited or assigned
   (``result = kn.run()``, ``r = %kailash run``), so serving a notebook never rewrites
   the files it exports.
2. **Preview statements** run, but without a preview (``serve`` starts no preview
   server): ``%kailash publish ... --preview`` and ``kn.publish(..., preview=...)``.
   The names they assign (``preview = %kailash publish x --preview``) count as skipped.
3. **Dependent statements** are dropped: a statement that reads a name bound only by a
   dropped statement or a preview (``print(result.value("report"))``,
   ``await client.post(preview.url)``), transitively; what they bind counts as skipped
   too. A kept statement that rebinds a name makes it available again. Reads inside
   function and lambda bodies do not count (they run only when called).
4. A cell tagged ``kailash-nb-skip`` is skipped whole.

Everything else runs, including other magics; only top-level statements are looked
at (a ``kn.run()`` inside ``%%time`` or a function still runs).
"""

from __future__ import annotations

import ast
import shlex
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SKIP_TAG", "CellFilter", "CellPlan"]

#: Cell tag that makes ``serve`` skip the whole cell.
SKIP_TAG = "kailash-nb-skip"
_DISPLAY_MAGICS = frozenset({"show", "run", "status", "export"})
_DISPLAY_FUNCTIONS = ("run", "run_async", "show", "status", "export")


@dataclass
class CellPlan:
    """What to run of one cell.

    Attributes:
        code: the code to run (the cell's source when nothing is dropped), or ``None``
            when nothing is left.
        skipped: the dropped statements, one line each (for the log).
    """

    code: str | None
    skipped: list[str] = field(default_factory=list)


class CellFilter:
    """Plans the cells of one notebook in order, tracking the names skipped so far.

    Args:
        namespace: the shell's user namespace; callees are resolved in it (through
            names and module attributes only, never by calling anything).
    """

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.namespace = namespace
        self.skipped_names: set[str] = set()

    def plan(self, source: str, transformed: str) -> CellPlan:
        """Plan a cell: ``source`` as written, ``transformed`` by IPython's input
        transformers (``shell.transform_cell``)."""
        try:
            tree = ast.parse(transformed)
        except SyntaxError:
            return CellPlan(source)  # let the shell report it, naming the cell
        kept: list[ast.stmt] = []
        skipped: list[str] = []
        for statement in tree.body:
            kind = self._kind(statement)
            bound = _bound_names(statement)
            if kind == "drop" or _reads(statement) & self.skipped_names:
                self.skipped_names |= bound
                skipped.append(_describe(statement))
            else:
                kept.append(statement)
                if kind == "preview":
                    self.skipped_names |= bound
                else:
                    self.skipped_names -= bound
        if not skipped:
            return CellPlan(source)
        if not kept:
            return CellPlan(None, skipped)
        return CellPlan(ast.unparse(ast.Module(body=kept, type_ignores=[])), skipped)

    def _kind(self, statement: ast.stmt) -> str:
        """``"drop"``, ``"preview"`` or ``"keep"`` for one top-level statement."""
        call = _statement_call(statement)
        if call is None:
            return "keep"
        magic = _kailash_magic(call)
        if magic is not None:
            words = _split(magic)
            if words[:1] and words[0] in _DISPLAY_MAGICS:
                return "drop"
            if words[:1] == ["publish"] and "--preview" in words:
                return "preview"
            return "keep"
        from kailash_nb import notebook

        target = _resolve(call.func, self.namespace)
        if target is None:
            return "keep"
        if any(target is getattr(notebook, name) for name in _DISPLAY_FUNCTIONS):
            return "drop"
        if target is notebook.publish and any(
            keyword.arg == "preview"
            and not (isinstance(keyword.value, ast.Constant) and not keyword.value.value)
            for keyword in call.keywords
        ):
            return "preview"
        return "keep"


def _describe(statement: ast.stmt) -> str:
    """One line for the log: the magic as written, or the statement's first line."""
    call = _statement_call(statement)
    magic = _kailash_magic(call) if call is not None else None
    text = f"%kailash {magic}" if magic is not None else ast.unparse(statement).splitlines()[0]
    return text[:100]


def _statement_call(statement: ast.stmt) -> ast.Call | None:
    value = getattr(statement, "value", None)
    if not isinstance(statement, (ast.Expr, ast.Assign, ast.AnnAssign)):
        return None
    if isinstance(value, ast.Await):
        value = value.value
    return value if isinstance(value, ast.Call) else None


def _kailash_magic(call: ast.Call) -> str | None:
    """The line of ``get_ipython().run_line_magic('kailash', LINE)``, else ``None``."""
    func = call.func
    if not (
        isinstance(func, ast.Attribute)
        and func.attr == "run_line_magic"
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "get_ipython"
        and len(call.args) >= 2
    ):
        return None
    name, line = call.args[0], call.args[1]
    if (
        isinstance(name, ast.Constant)
        and name.value == "kailash"
        and isinstance(line, ast.Constant)
        and isinstance(line.value, str)
    ):
        return line.value
    return None


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


def _resolve(node: ast.expr, namespace: Mapping[str, Any]) -> Any:
    """The object ``name`` or ``module.attr...`` denotes in ``namespace``, or ``None``."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, namespace)
        if isinstance(base, types.ModuleType):
            return getattr(base, node.attr, None)
    return None


def _eager_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """``node`` and its descendants, except function and lambda bodies."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
            child is statement for statement in node.body
        ):
            continue
        if isinstance(node, ast.Lambda) and child is node.body:
            continue
        yield from _eager_nodes(child)


def _reads(statement: ast.stmt) -> set[str]:
    return {
        node.id
        for node in _eager_nodes(statement)
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }


def _bound_names(statement: ast.stmt) -> set[str]:
    names: set[str] = set()
    for node in _eager_nodes(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names
