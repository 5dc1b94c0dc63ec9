"""Fingerprints: short digests that change when a node's definition changes.

A function's fingerprint covers its source text, its bytecode, its default values,
the values in its closure cells and the values of the globals it reads (a helper
function it calls is fingerprinted the same way, recursively). Values are digested
through pickle; a value that cannot be pickled falls back to its ``id`` and type,
so it counts as changed whenever it is replaced by another object (but not when it
is mutated in place)::

    fingerprint_function(clean) == fingerprint_function(clean)   # stable
    fingerprint_value({"rows": [1, 2]})                           # content digest

Digests are only compared within one Python process (the notebook's cache lives in
memory), so ``id``-based fallbacks are safe.
"""

from __future__ import annotations

import dis
import functools
import hashlib
import io
import os
import pickle
import sys
import sysconfig
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "combine",
    "content_digest",
    "fingerprint_function",
    "fingerprint_value",
    "function_dependencies",
    "global_names",
    "global_reads",
    "rebound",
]

_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})


def combine(*parts: str) -> str:
    """One digest of several digests or strings, order-sensitive."""
    known = _COMBINED.get(parts)
    if known is not None:
        return known
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    if len(_COMBINED) >= _COMBINED_SIZE:
        _COMBINED.clear()
    result = _COMBINED[parts] = digest.hexdigest()[:32]
    return result


# Recent ``combine`` results: re-planning an unchanged workflow combines the same
# digests again (a pure function, so remembering is exact).
_COMBINED: dict[tuple[str, ...], str] = {}
_COMBINED_SIZE = 16_384


def fingerprint_value(value: Any, memo: dict[int, str] | None = None) -> str:
    """Digest of ``value``'s content, or of its identity when it cannot be pickled.

    Functions inside the value are digested with ``fingerprint_function``; classes
    and modules by identity and name. ``memo`` shares work between calls.
    """
    memo = {} if memo is None else memo
    sink = _DigestSink()
    try:
        _Pickler(sink, memo).dump(value)
    except Exception:
        return _identity(value)
    return sink.hexdigest()


def content_digest(value: Any) -> str | None:
    """Digest of ``value``'s content, or ``None`` when it cannot be pickled (then a
    change made to it in place could not be seen). The output cache keeps one per
    stored output to notice outputs that were changed after they were stored."""
    sink = _DigestSink()
    try:
        _Pickler(sink, {}, pandas_rows=False).dump(value)
    except Exception:
        return None
    return sink.hexdigest()


def fingerprint_function(function: Callable[..., Any], memo: dict[int, str] | None = None) -> str:
    """Digest of a function's definition and of everything it reads when it runs.

    Covers the source text, the bytecode (without file names or line numbers, so
    re-running an unchanged notebook cell keeps the digest), defaults, closure cell
    values and the current values of the globals the code loads. Bound methods,
    ``functools.partial`` objects and other callables are unwrapped or digested as
    values.
    """
    memo = {} if memo is None else memo
    key = id(function)
    if key in memo:
        return memo[key]
    if isinstance(function, types.MethodType):
        digest = combine(
            "method",
            fingerprint_function(function.__func__, memo),
            fingerprint_value(function.__self__, memo),
        )
    elif isinstance(function, functools.partial):
        digest = combine(
            "partial",
            fingerprint_function(function.func, memo),
            fingerprint_value((function.args, function.keywords), memo),
        )
    elif isinstance(function, types.FunctionType) and _is_library(function.__module__):
        digest = combine("library", function.__module__, function.__qualname__)
    elif isinstance(function, types.FunctionType):
        # A placeholder first: a function that reads itself (recursion) terminates.
        memo[key] = combine("recursive", function.__qualname__)
        digest = _function_digest(function, memo)
    else:
        digest = fingerprint_value(function, memo)
    memo[key] = digest
    return digest


def global_names(code: types.CodeType) -> list[str]:
    """Names ``code`` (and the code nested in it) loads as globals, first use first."""
    return list(_global_names(code))


def function_dependencies(function: Callable[..., Any]) -> tuple[Any, ...] | None:
    """Every object ``fingerprint_function(function)`` reads, or ``None`` when one of them
    may change in place (a list, a dict, an arbitrary object).

    Two calls returning tuples whose items are the same objects (``is``) mean the
    fingerprint is unchanged, so a stored fingerprint can be reused without digesting
    again. The objects read by helper functions it calls are included.
    """
    found: list[Any] = []
    if _collect_dependencies(function, found, set()):
        return tuple(found)
    return None


def global_reads(function: Callable[..., Any] | None) -> list[tuple[dict[str, Any], str, Any]]:
    """``(namespace, name, value)`` for every global ``function`` reads, helper functions
    it reaches included: when ``namespace.get(name)`` is no longer ``value``, a cell
    rebound the global and the function's fingerprint may have changed."""
    reads: list[tuple[dict[str, Any], str, Any]] = []
    seen: set[int] = set()
    pending: list[Any] = [function]
    while pending:
        value = pending.pop()
        if isinstance(value, (tuple, frozenset)):
            pending.extend(value)
            continue
        if (
            not isinstance(value, types.FunctionType)
            or id(value) in seen
            or _is_library(value.__module__)
        ):
            continue
        seen.add(id(value))
        namespace = value.__globals__
        for name in _global_names(value.__code__):
            read = namespace.get(name, _MISSING)
            reads.append((namespace, name, read))
            pending.append(read)
        pending.extend(_cell_value(cell) for cell in value.__closure__ or ())
        pending.extend(value.__defaults__ or ())
    return reads


def rebound(reads: list[tuple[dict[str, Any], str, Any]]) -> bool:
    """True if one of the globals listed by ``global_reads`` now holds another object."""
    return any(namespace.get(name, _MISSING) is not value for namespace, name, value in reads)


# -- internals ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def _global_names(code: types.CodeType) -> tuple[str, ...]:
    # Code objects compare by content, so an unchanged cell re-run hits the cache.
    found: dict[str, None] = {}
    for nested in _code_objects(code):
        for instruction in dis.get_instructions(nested):
            if instruction.opname in _GLOBAL_OPS and isinstance(instruction.argval, str):
                found[instruction.argval] = None
    return tuple(found)


_MISSING = object()
#: Types whose instances cannot change while they live (exact types: a subclass may
#: carry attributes); modules and classes are digested by name and identity.
_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes, range})


def _collect_dependencies(value: Any, found: list[Any], seen: set[int]) -> bool:
    """Append what the digest of ``value`` reads to ``found``; False if it may mutate."""
    found.append(value)
    if type(value) in _ATOMS or isinstance(value, (types.ModuleType, type)) or value is _MISSING:
        return True
    if type(value) in (tuple, frozenset):
        return all(_collect_dependencies(item, found, seen) for item in value)
    if isinstance(value, types.BuiltinFunctionType):  # ``len``, or ``rows.append``
        return _collect_dependencies(value.__self__, found, seen)
    if not isinstance(value, types.FunctionType):
        return False  # methods, partials, containers, objects: digest them every time
    found.extend((value.__module__, value.__qualname__))
    if id(value) in seen or _is_library(value.__module__):
        return True
    seen.add(id(value))
    code = value.__code__
    found.append(code)
    if value.__kwdefaults__ is not None:
        return False
    if not _collect_dependencies(value.__defaults__, found, seen):
        return False
    for cell in value.__closure__ or ():
        if not _collect_dependencies(_cell_value(cell), found, seen):
            return False
    namespace = value.__globals__
    found.append(namespace)
    for name in _global_names(code):
        if not _collect_dependencies(namespace.get(name, _MISSING), found, seen):
            return False
    return True


def _function_digest(function: types.FunctionType, memo: dict[int, str]) -> str:
    # The compiled code stands for the source: reading the source text back through
    # ``inspect`` is unreliable in notebooks (kernels may give every cell the same file
    # name), while the bytecode, constants and names change exactly when behavior can.
    code = function.__code__
    closure = {
        name: _cell_value(cell)
        for name, cell in zip(code.co_freevars, function.__closure__ or (), strict=False)
    }
    namespace = function.__globals__
    used_globals = {name: namespace[name] for name in _global_names(code) if name in namespace}
    return combine(
        "function",
        function.__qualname__,
        _code_digest(code),
        fingerprint_value(function.__defaults__, memo),
        fingerprint_value(function.__kwdefaults__, memo),
        *(combine(name, _digest_any(value, memo)) for name, value in closure.items()),
        *(combine(name, _digest_any(value, memo)) for name, value in used_globals.items()),
    )


def _digest_any(value: Any, memo: dict[int, str]) -> str:
    if isinstance(value, (types.FunctionType, types.MethodType, functools.partial)):
        return fingerprint_function(value, memo)
    return fingerprint_value(value, memo)


def _cell_value(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell: the variable is not assigned yet
        return _EMPTY_CELL


_EMPTY_CELL = "<empty cell>"


@functools.lru_cache(maxsize=4096)
def _code_digest(code: types.CodeType) -> str:
    digest = hashlib.sha256()
    for nested in _code_objects(code):
        digest.update(nested.co_code)
        digest.update(repr((nested.co_names, nested.co_varnames, nested.co_freevars)).encode())
        for constant in nested.co_consts:
            if not isinstance(constant, types.CodeType):
                digest.update(repr(constant).encode())
    return digest.hexdigest()


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _code_objects(constant)


@functools.lru_cache(maxsize=1024)
def _is_library(module_name: str | None) -> bool:
    """True for modules installed with Python or in site-packages: their code does not
    change while a notebook runs, so it is named rather than digested."""
    module = sys.modules.get(module_name or "")
    path = getattr(module, "__file__", None)
    if not path:
        return False
    resolved = str(Path(path).resolve())
    return any(resolved.startswith(root) for root in _library_roots())


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple(
        str(Path(paths[key]).resolve()) + os.sep
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if key in paths
    )


def _identity(value: Any) -> str:
    kind = type(value)
    return combine("id", str(id(value)), kind.__module__, kind.__qualname__)


class _DigestSink(io.RawIOBase):
    """A write-only file that hashes what pickle writes instead of storing it."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        # Large buffers (numpy arrays) arrive as a PickleBuffer, which has no len().
        view = memoryview(data)
        self._digest.update(view)
        return view.nbytes

    def hexdigest(self) -> str:
        return self._digest.hexdigest()[:32]


class _Pickler(pickle.Pickler):
    """Pickles for digesting: code by content, classes and modules by identity,
    pandas objects through their fast row hashes (unless ``pandas_rows=False``)."""

    def __init__(
        self, file: io.RawIOBase, memo: dict[int, str], *, pandas_rows: bool = True
    ) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._digests = memo
        # False: pandas objects are pickled as they are (faster than row hashes for a
        # one-off digest of a whole frame).
        self._pandas_rows = pandas_rows

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (types.FunctionType, functools.partial, types.MethodType)):
            return str, (fingerprint_function(obj, self._digests),)
        if isinstance(obj, type):
            if obj.__module__ == "builtins":
                return NotImplemented
            return str, (_identity(obj),)
        if isinstance(obj, types.ModuleType):
            return str, ("module:" + obj.__name__,)
        if self._pandas_rows and type(obj).__module__.startswith("pandas."):
            digest = _pandas_digest(obj)
            if digest is not None:
                return str, (digest,)
        return NotImplemented


def _pandas_digest(obj: Any) -> str | None:
    import pandas as pd

    if not isinstance(obj, (pd.DataFrame, pd.Series, pd.Index)):
        return None
    try:
        rows = pd.util.hash_pandas_object(obj, index=not isinstance(obj, pd.Index))
    except TypeError:  # unhashable cells (lists, dicts): let pickle digest them
        return None
    layout = repr(
        (type(obj).__name__, getattr(obj, "shape", None), str(getattr(obj, "dtypes", "")))
    )
    names = repr(list(obj.columns) if isinstance(obj, pd.DataFrame) else getattr(obj, "name", ""))
    return combine("pandas", layout, names, hashlib.sha256(rows.to_numpy().tobytes()).hexdigest())
