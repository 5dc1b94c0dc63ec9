"""Static analysis of code strings, cached by source: compiled once however many
nodes share the same snippet."""

from __future__ import annotations

import ast
import builtins
import functools
import hashlib
import linecache
import symtable
from dataclasses import dataclass
from types import CodeType

__all__ = ["CodeAnalysis", "analyze", "is_bounded"]

_BUILTIN_NAMES = frozenset(dir(builtins))


@dataclass(frozen=True)
class CodeAnalysis:
    """A compiled snippet with the names it reads and the names it binds.

    Attributes:
        code: the compiled code object.
        free_names: names read (at module scope, or as globals from nested scopes)
            and never bound, builtins excluded, in order of first appearance.
        bound_names: names bound at module scope (assignments, imports, defs).
        bounded: the snippet runs in time linear in its inputs' size (``is_bounded``).
    """

    code: CodeType
    free_names: tuple[str, ...]
    bound_names: frozenset[str]
    bounded: bool = False


@functools.lru_cache(maxsize=2048)
def analyze(source: str, flags: int = 0) -> CodeAnalysis:
    """Compile ``source`` and find its free and bound names.

    The snippet is registered with ``linecache`` so tracebacks show its lines.

    Raises:
        SyntaxError: the source does not compile.
    """
    filename = f"<node code {hashlib.sha1(source.encode()).hexdigest()[:10]}>"  # noqa: S324
    code = compile(source, filename, "exec", flags=flags, dont_inherit=True)
    table = symtable.symtable(source, filename, "exec")
    bound = frozenset(
        symbol.get_name()
        for symbol in table.get_symbols()
        if symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace()
    )
    found: dict[str, None] = {}
    for scope in (table, *_descendants(table)):
        for symbol in scope.get_symbols():
            name = symbol.get_name()
            reads_global = scope is table or symbol.is_global()
            if (
                reads_global
                and symbol.is_referenced()
                and name not in bound
                and name not in _BUILTIN_NAMES
            ):
                found[name] = None
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return CodeAnalysis(
        code=code, free_names=tuple(found), bound_names=bound, bounded=is_bounded(source)
    )


#: Syntax a bounded snippet may use: assignments, literals, names, subscripts,
#: comparisons, boolean logic and conditionals, f-strings without format specs.
_BOUNDED_NODES = (
    ast.Module,
    ast.Expr,
    ast.Assign,
    ast.Pass,
    ast.If,
    ast.IfExp,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Constant,
    ast.Dict,
    ast.List,
    ast.Tuple,
    ast.Subscript,
    ast.Slice,
    ast.Compare,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.JoinedStr,
    ast.FormattedValue,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.Is,
    ast.IsNot,
    ast.In,
    ast.NotIn,
)


@functools.lru_cache(maxsize=2048)
def is_bounded(source: str) -> bool:
    """Whether ``source`` provably finishes in time linear in the size of its inputs.

    Only straight-line code qualifies: assignments, literals, names, subscripts,
    comparisons, ``and``/``or``/``not``, ``if``/conditional expressions, ``+``/``-``
    and f-strings without format specs. Calls, attribute access, loops,
    comprehensions, imports, definitions and operators whose cost the operands choose
    (``*``, ``**``, ``%``, ``<<``, ...) are excluded: a call can block, ``"a" * n``
    or ``f"{x:>{n}}"`` can take any time. Glue code such as
    ``result = {"total": price + tax, "ok": price > 0}`` qualifies.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if not isinstance(node, _BOUNDED_NODES):
            return False
        if isinstance(node, ast.FormattedValue) and node.format_spec is not None:
            return False
    return True


def _descendants(table: symtable.SymbolTable):
    for child in table.get_children():
        yield child
        yield from _descendants(child)
