"""Running a code string or a callable with named inputs, for Kailash's ``CodeExecutor``
and its function and class wrappers.

Every run gets a fresh namespace, so nothing one run defines is seen by the next.
The code is trusted: full builtins, any import (see ``kailash_nb.nodes.code``).
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints

from kailash_nb.sdk_exceptions import (
    KailashException,
    NodeConfigurationError,
    NodeExecutionError,
)

#: Methods a wrapped class is looked up for, in order, when none is named (Kailash's).
PROCESS_METHODS = ("process", "execute", "run", "transform", "__call__")


def run_code(code: str, inputs: Mapping[str, Any], modules: frozenset[str]) -> dict[str, Any]:
    """Execute ``code`` with ``inputs`` as variables; return its public variables.

    The result holds every variable left at the end (inputs included) except names
    starting with ``_`` and modules. ``modules`` are importable names made available
    without an ``import`` statement.

    Raises:
        NodeExecutionError: the code does not compile or raised.
    """
    namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": "kailash_nb.code"}
    preloaded = {name: importlib.import_module(name) for name in modules}
    namespace.update(preloaded)
    namespace.update(inputs)
    try:
        exec(compile(code, "<code>", "exec"), namespace)  # noqa: S102 - trusted code
    except KailashException:
        raise
    except Exception as exc:
        raise NodeExecutionError(f"code failed: {type(exc).__name__}: {exc}") from exc
    return {
        name: value
        for name, value in namespace.items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and not (name in preloaded and value is preloaded[name])
    }


def call_with(func: Callable[..., Any], inputs: Mapping[str, Any]) -> Any:
    """Call ``func`` with the ``inputs`` its signature names (all of them if it takes
    ``**kwargs``); parameters with defaults may be left out.

    Raises:
        NodeExecutionError: a parameter without default has no input, or ``func`` raised.
    """
    signature = inspect.signature(func)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    arguments: dict[str, Any] = {}
    for name, parameter in signature.parameters.items():
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        if name in inputs:
            arguments[name] = inputs[name]
        elif parameter.default is parameter.empty:
            raise NodeExecutionError(
                f"{getattr(func, '__qualname__', func)!r} needs input {name!r}; the inputs are "
                f"{sorted(inputs)}"
            )
    if takes_any:
        arguments.update((name, value) for name, value in inputs.items() if name not in arguments)
    try:
        return func(**arguments)
    except KailashException:
        raise
    except Exception as exc:
        raise NodeExecutionError(
            f"{getattr(func, '__qualname__', func)!r} failed: {type(exc).__name__}: {exc}"
        ) from exc


def process_method(cls: type, method_name: str | None) -> str:
    """The name of the method a wrapped class does its work in.

    Raises:
        NodeConfigurationError: ``method_name`` is not a method of ``cls``, or none of
            ``PROCESS_METHODS`` is when no name is given.
    """
    if method_name is not None:
        if not callable(getattr(cls, method_name, None)):
            raise NodeConfigurationError(f"class {cls.__name__} has no method {method_name!r}")
        return method_name
    for name in PROCESS_METHODS:
        if callable(getattr(cls, name, None)) and (name != "__call__" or _defines_call(cls)):
            return name
    raise NodeConfigurationError(
        f"class {cls.__name__} has none of the methods {list(PROCESS_METHODS)}; name the one "
        "to call with process_method"
    )


def _defines_call(cls: type) -> bool:
    return any("__call__" in vars(base) for base in cls.__mro__ if base is not object)


def type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """``func``'s resolved annotations, or ``{}`` when they cannot be resolved."""
    try:
        return get_type_hints(func)
    except (NameError, TypeError):
        return {}


def parameter_info(func: Callable[..., Any]) -> dict[str, dict[str, Any]]:
    """Each named parameter of ``func`` (``self`` and ``*args``/``**kwargs`` left out):
    its annotated type (``Any`` if none), whether it has a default, and the default."""
    hints = type_hints(func)
    info = {}
    for name, parameter in inspect.signature(func).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        has_default = parameter.default is not parameter.empty
        info[name] = {
            "type": hints.get(name, Any),
            "has_default": has_default,
            "default": parameter.default if has_default else None,
        }
    return info
