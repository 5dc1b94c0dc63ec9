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

__all__ = ["CodeAnalysis", "analyze", "is_bounded", "optional_names"]

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
        optional_names: names the snippet is ready to find undefined
            (``optional_names``), in order of first appearance.
    """

    code: CodeType
    free_names: tuple[str, ...]
    bound_names: frozenset[str]
    bounded: bool = False
    optional_names: tuple[str, ...] = ()


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
        code=code,
        free_names=tuple(found),
        bound_names=bound,
        bounded=is_bounded(source),
        optional_names=optional_names(source, tuple(found), bound),
    )


#: Exception names whose handler catches the ``NameError`` of an undefined name.
_NAME_ERROR_CATCHERS = frozenset({"NameError", "Exception", "BaseException"})
#: Calls returning the snippet's namespace (or its names), so ``"x" in locals()`` and
#: ``locals().get("x")`` look a name up without failing when it is undefined.
_NAMESPACE_CALLS = frozenset({"locals", "globals", "vars", "dir"})


def optional_names(
    source: str, free_names: tuple[str, ...], bound_names: frozenset[str]
) -> tuple[str, ...]:
    """The input names ``source`` is written to find undefined: the Kailash idioms for
    optional inputs and cycle state.

    A name is optional when the snippet

    - reads it, unbound, inside the ``try`` body of a statement with a handler that
      catches ``NameError`` (``except NameError``, ``except (KeyError, NameError)``,
      ``except Exception``, ``except BaseException`` or a bare ``except``);
    - copies it onto itself there (``count = count``: cycle state fed back by a cycle);
    - looks it up by name: ``locals().get("x")``, ``globals().get("x")``,
      ``vars().get("x")``, ``"x" in locals()`` / ``globals()`` / ``vars()`` / ``dir()``
      (or ``not in``).

    Builtins and dunder names are never inputs. Reads elsewhere in the snippet do not
    make a guarded name required again: the guard shows the author expects it to be
    missing.

    Raises:
        SyntaxError: the source does not parse.
    """
    tree = ast.parse(source)
    free = frozenset(free_names)
    found: dict[str, tuple[int, int]] = {}

    def add(name: str, where: ast.AST) -> None:
        if name.isidentifier() and not name.startswith("__") and name not in _BUILTIN_NAMES:
            position = (where.lineno, where.col_offset)  # type: ignore[attr-defined]
            found[name] = min(found.get(name, position), position)

    for node in ast.walk(tree):
        if isinstance(node, (ast.Try, ast.TryStar)):
            if not any(_catches_name_error(handler) for handler in node.handlers):
                continue
            for statement in node.body:
                for inner in ast.walk(statement):
                    if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Load):
                        if inner.id in free:
                            add(inner.id, inner)
                    elif _is_self_copy(inner):
                        add(inner.value.id, inner)  # type: ignore[attr-defined]
        elif isinstance(node, ast.Call):
            name = _namespace_get(node, bound_names)
            if name is not None:
                add(name, node)
        elif isinstance(node, ast.Compare):
            for name in _namespace_membership(node, bound_names):
                add(name, node)
    return tuple(sorted(found, key=found.__getitem__))


def _catches_name_error(handler: ast.ExceptHandler) -> bool:
    caught = handler.type
    if caught is None:
        return True
    candidates = caught.elts if isinstance(caught, ast.Tuple) else [caught]
    for candidate in candidates:
        if isinstance(candidate, ast.Name) and candidate.id in _NAME_ERROR_CATCHERS:
            return True
        if isinstance(candidate, ast.Attribute) and candidate.attr in _NAME_ERROR_CATCHERS:
            return True
    return False


def _is_self_copy(node: ast.AST) -> bool:
    """``x = x``: the Kailash idiom keeping a cycle's state from one iteration to the next."""
    return (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Name)
        and node.targets[0].id == node.value.id
    )


def _is_namespace_call(node: ast.AST, bound_names: frozenset[str]) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _NAMESPACE_CALLS
        and node.func.id not in bound_names
        and not node.args
        and not node.keywords
    )


def _namespace_get(node: ast.Call, bound_names: frozenset[str]) -> str | None:
    """The name in ``locals().get("name", ...)`` (or ``globals()``/``vars()``)."""
    func = node.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr == "get"
        and _is_namespace_call(func.value, bound_names)
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def _namespace_membership(node: ast.Compare, bound_names: frozenset[str]) -> list[str]:
    """The names in ``"name" in locals()`` (or ``not in``, ``globals()``, ``vars()``, ``dir()``)."""
    names = []
    left = node.left
    for operator, right in zip(node.ops, node.comparators, strict=True):
        if (
            isinstance(operator, (ast.In, ast.NotIn))
            and isinstance(left, ast.Constant)
            and isinstance(left.value, str)
            and _is_namespace_call(right, bound_names)
        ):
            names.append(left.value)
        left = right
    return names


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
