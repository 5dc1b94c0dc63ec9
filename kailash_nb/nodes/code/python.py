"""Code nodes: a Python snippet or function as a workflow step.

``PythonCodeNode(code="result = x + 1")`` runs the snippet with its inputs as
variables and returns ``{"result": ...}``. The inputs it needs are read off the code
(names it uses but never assigns), so a missing one fails before the run starts.
Names the code is ready to find undefined are optional inputs, as in Kailash::

    try:
        total = total          # cycle state: undefined on the first iteration
    except NameError:
        total = 0
    limit = locals().get("limit", 10)

The snippet is compiled once, when the node is built.

Code nodes run trusted code with the full Python builtins: they are for the
workflow author's own code, never for definitions submitted by untrusted callers.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from typing import Any, ClassVar

from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.nodes.code._executor import (
    call_with,
    parameter_info,
    process_method,
    run_code,
    type_hints,
)
from kailash_nb.nodes.code._runner import PRELOADED_MODULES, CodeRunner
from kailash_nb.nodes.node import Node
from kailash_nb.nodes.registry import register_node
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeExecutionError

__all__ = [
    "AsyncPythonCodeNode",
    "ClassWrapper",
    "CodeExecutor",
    "FunctionWrapper",
    "PythonCodeNode",
]


@register_node()
class PythonCodeNode(CodeRunner, Node):
    """Run a Python snippet (``code``) or a function (``function``) as a node.

    Code mode: inputs become variables; if the snippet assigns ``result`` the output
    is ``{"result": result}``, otherwise it is every public variable the snippet
    assigned (modules, functions and classes left out). Standard modules such as
    ``math``, ``json``, ``datetime`` and ``re`` are available without an import.

    Function mode (``PythonCodeNode.from_function(fn)``): inputs come from the
    signature, annotated ones are coerced, and the return value becomes
    ``{"result": value}``, except a dict that already has a ``"result"`` key, which
    is returned as is (so a function can produce several outputs).

    Class mode (``PythonCodeNode.from_class(cls)`` or ``class_type=cls``): every run
    makes a new instance and calls its ``process_method`` (found among ``process``,
    ``execute``, ``run``, ``transform`` when not named); a dict it returns is the
    outputs, any other value becomes ``{"result": value}``.

    ``input_schema`` (names to ``NodeParameter``) declares inputs over those read off
    the code or signature; ``output_schema`` declares outputs, checked on every run.
    Config keys other than ``code``, ``function``, ``class_type``, ``process_method``,
    ``input_types``, ``output_type``, ``input_schema`` and ``output_schema`` are default
    values for the inputs.

    Raises:
        NodeConfigurationError: not exactly one of code/function/class_type, a syntax error
            (with its line), or an option kailash_nb does not implement.
    """

    accepts_extra_inputs: ClassVar[bool] = True

    @classmethod
    def from_function(
        cls, func: Callable[..., Any], name: str | None = None, **config: Any
    ) -> PythonCodeNode:
        """Wrap ``func`` as a node whose inputs are the function's parameters."""
        if inspect.iscoroutinefunction(func) and cls is PythonCodeNode:
            return AsyncPythonCodeNode.from_function(func, name=name, **config)
        return cls(name=name or getattr(func, "__name__", None), function=func, **config)

    @classmethod
    def from_class(
        cls,
        class_type: type,
        process_method: str | None = None,
        name: str | None = None,
        **config: Any,
    ) -> PythonCodeNode:
        """Wrap ``class_type`` as a node: each run calls ``process_method`` of a new
        instance (found among Kailash's usual names when not given).

        Raises:
            NodeConfigurationError: no such method.
        """
        return cls(
            name=name or class_type.__name__,
            class_type=class_type,
            process_method=process_method,
            **config,
        )

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Execute the snippet or call the function with ``kwargs``."""
        if self._class is not None:
            value = self._class_method()(**kwargs)
            return value if isinstance(value, dict) else {"result": value}
        if self._function is not None:
            return self._wrap_return(self._function(**kwargs))
        namespace = self._namespace(kwargs)
        exec(self._code, namespace)  # noqa: S102 - running trusted node code is the point
        return self._outputs_from(namespace)


@register_node()
class AsyncPythonCodeNode(CodeRunner, AsyncNode):
    """Like ``PythonCodeNode`` but the snippet may ``await`` at top level.

    ``asyncio`` is available without an import. With ``function``, the function may
    be ``async def`` (awaited) or plain (called).
    """

    accepts_extra_inputs: ClassVar[bool] = True
    _compile_flags: ClassVar[int] = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    _extra_modules: ClassVar[frozenset[str]] = frozenset({"asyncio"})

    @classmethod
    def from_function(
        cls, func: Callable[..., Any], name: str | None = None, **config: Any
    ) -> AsyncPythonCodeNode:
        """Wrap ``func`` (usually ``async def``) as a node."""
        return cls(name=name or getattr(func, "__name__", None), function=func, **config)

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        """Execute the snippet or call the function with ``kwargs``, awaiting as needed."""
        if self._class is not None:
            value = self._class_method()(**kwargs)
            if inspect.isawaitable(value):
                value = await value
            return value if isinstance(value, dict) else {"result": value}
        if self._function is not None:
            value = self._function(**kwargs)
            if inspect.isawaitable(value):
                value = await value
            return self._wrap_return(value)
        namespace = self._namespace(kwargs)
        pending = eval(self._code, namespace)  # noqa: S307 - compiled node code, may await
        if pending is not None:
            await pending
        return self._outputs_from(namespace)


class CodeExecutor:
    """Runs code strings and functions with named inputs, outside any node (Kailash's
    ``CodeExecutor``).

    Each call starts from a fresh namespace, so variables never carry over from one
    call to the next. The code is trusted: full builtins and any import, with
    ``math``, ``json``, ``datetime`` and the other standard modules of code nodes
    available without an import. Kailash's ``allowed_modules`` and
    ``security_config`` raise ``NodeConfigurationError`` (there is no sandbox to
    configure)::

        CodeExecutor().execute_code("total = x + y", {"x": 1, "y": 2})
        # {"x": 1, "y": 2, "total": 3}
    """

    def __init__(self, allowed_modules: Any = None, security_config: Any = None) -> None:
        for option, value in (
            ("allowed_modules", allowed_modules),
            ("security_config", security_config),
        ):
            if value is not None:
                raise NodeConfigurationError(
                    f"CodeExecutor option {option!r} is not supported: code runs trusted, "
                    "with any import and no sandbox to configure"
                )

    def execute_code(
        self, code: str, inputs: dict[str, Any], node_instance: Any = None
    ) -> dict[str, Any]:
        """Execute ``code`` with ``inputs`` as variables and return the variables left
        at the end (inputs included), without names starting with ``_`` and modules.
        ``node_instance`` is accepted for Kailash's signature and not used.

        Raises:
            NodeExecutionError: the code does not compile or raised.
        """
        return run_code(code, inputs, PRELOADED_MODULES)

    def execute_function(self, func: Callable[..., Any], inputs: dict[str, Any]) -> Any:
        """Call ``func`` with the inputs its signature names (all of them if it takes
        ``**kwargs``) and return what it returns.

        Raises:
            NodeExecutionError: a parameter without default has no input, or ``func`` raised.
        """
        return call_with(func, inputs)


class FunctionWrapper:
    """A Python function seen as a node (Kailash's ``FunctionWrapper``).

    Example::

        FunctionWrapper(multiply).execute({"x": 2, "y": 3})   # {"result": 6}
        node = FunctionWrapper(multiply).to_node(name="multiplier")
    """

    def __init__(self, func: Callable[..., Any], executor: CodeExecutor | None = None) -> None:
        self.func = func
        self.executor = executor or CodeExecutor()
        self.signature = inspect.signature(func)
        self.name: str = getattr(func, "__name__", type(func).__name__)
        self.doc = inspect.getdoc(func) or ""
        self.type_hints = type_hints(func)

    def get_input_types(self) -> dict[str, Any]:
        """The type of each named parameter (``Any`` when not annotated)."""
        return {name: info["type"] for name, info in self.get_parameter_info().items()}

    def get_parameter_info(self) -> dict[str, dict[str, Any]]:
        """Each named parameter's ``type``, ``has_default`` and ``default``."""
        return parameter_info(self.func)

    def accepts_var_keyword(self) -> bool:
        """True when the function takes ``**kwargs``."""
        return any(p.kind is p.VAR_KEYWORD for p in self.signature.parameters.values())

    def get_output_type(self) -> Any:
        """The return annotation (``Any`` when there is none)."""
        return self.type_hints.get("return", Any)

    def execute(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Call the function; its value as ``{"result": value}`` unless it already is
        a dict with just a ``"result"`` key.

        Raises:
            NodeExecutionError: a parameter without default has no input, or it raised.
        """
        value = self.executor.execute_function(self.func, inputs)
        if isinstance(value, dict) and list(value) == ["result"]:
            return value
        return {"result": value}

    def to_node(
        self, name: str | None = None, description: str | None = None, **config: Any
    ) -> PythonCodeNode:
        """A ``PythonCodeNode`` calling the function."""
        return PythonCodeNode.from_function(
            self.func, name=name or self.name, description=description or self.doc, **config
        )


class ClassWrapper:
    """A Python class seen as a stateful node (Kailash's ``ClassWrapper``).

    ``execute`` keeps one instance across calls, so state accumulates; the node made
    by ``to_node`` makes a new instance on every run, as in Kailash::

        wrapper = ClassWrapper(Accumulator)      # finds Accumulator.process
        wrapper.execute({"value": 5.0})          # {"result": 5.0}
        wrapper.execute({"value": 3.0})          # {"result": 8.0}

    Raises:
        NodeConfigurationError: ``method_name`` is not a method of the class, or none
            of ``process``, ``execute``, ``run``, ``transform`` is when it is not given.
    """

    def __init__(
        self,
        cls: type,
        method_name: str | None = None,
        executor: CodeExecutor | None = None,
    ) -> None:
        self.cls = cls
        self.method_name = method_name
        self.executor = executor or CodeExecutor()
        self.name = cls.__name__
        self.doc = inspect.getdoc(cls) or ""
        self.instance: Any = None
        self.process_method = process_method(cls, method_name)
        self.method = getattr(cls, self.process_method)
        self.signature = inspect.signature(self.method)
        self.type_hints = type_hints(self.method)

    def get_input_types(self) -> dict[str, Any]:
        """The type of each named parameter of the method (``Any`` when not annotated)."""
        return {name: info["type"] for name, info in self.get_parameter_info().items()}

    def get_parameter_info(self) -> dict[str, dict[str, Any]]:
        """Each named parameter's ``type``, ``has_default`` and ``default`` (no ``self``)."""
        return parameter_info(self.method)

    def accepts_var_keyword(self) -> bool:
        """True when the method takes ``**kwargs``."""
        return any(p.kind is p.VAR_KEYWORD for p in self.signature.parameters.values())

    def get_output_type(self) -> Any:
        """The method's return annotation (``Any`` when there is none)."""
        return self.type_hints.get("return", Any)

    def execute(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Call the method of this wrapper's instance (made on first use); a dict it
        returns is the outputs, any other value becomes ``{"result": value}``.

        Raises:
            NodeExecutionError: the class cannot be instantiated, an input is missing,
                or the method raised.
        """
        if self.instance is None:
            try:
                self.instance = self.cls()
            except Exception as exc:
                raise NodeExecutionError(
                    f"cannot make an instance of {self.name}: {type(exc).__name__}: {exc}"
                ) from exc
        value = self.executor.execute_function(getattr(self.instance, self.process_method), inputs)
        return value if isinstance(value, dict) else {"result": value}

    def to_node(
        self, name: str | None = None, description: str | None = None, **config: Any
    ) -> PythonCodeNode:
        """A ``PythonCodeNode`` calling the method of a new instance on every run."""
        return PythonCodeNode.from_class(
            self.cls,
            process_method=self.process_method,
            name=name or self.name,
            description=description or self.doc,
            **config,
        )
