"""Static analysis of code strings, cached by source: compiled once however many
nodes share the same snippet."""

from __future__ import annotations

import builtins
import functools
import hashlib
import linecache
import symtable
from dataclasses import dataclass
from types import CodeType

__all__ = ["CodeAnalysis", "analyze"]

_BUILTIN_NAMES = frozenset(dir(builtins))


@dataclass(frozen=True)
class CodeAnalysis:
    """A compiled snippet with the names it reads and the names it binds.

    Attributes:
        code: the compiled code object.
        free_names: names read (at module scope, or as globals from nested scopes)
            and never bound, builtins excluded, in order of first appearance.
        bound_names: names bound at module scope (assignments, imports, defs).
    """

    code: CodeType
    free_names: tuple[str, ...]
    bound_names: frozenset[str]


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
    return CodeAnalysis(code=code, free_names=tuple(found), bound_names=bound)


def _descendants(table: symtable.SymbolTable):
    for child in table.get_children():
        yield child
        yield from _descendants(child)
