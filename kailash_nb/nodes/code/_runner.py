"""The machinery shared by ``PythonCodeNode`` and ``AsyncPythonCodeNode``: reading a
snippet's inputs off its code, or a function's or class's off its signature, and the
namespace a snippet runs in."""

from __future__ import annotations

import builtins
import functools
import importlib
import inspect
import types
from collections.abc import Callable
from typing import Any, ClassVar

from kailash_nb.nodes._code_analysis import analyze
from kailash_nb.nodes.code._executor import process_method
from kailash_nb.nodes.node import NodeParameter
from kailash_nb.sdk_exceptions import NodeConfigurationError

# Standard modules a snippet may use without importing them, as in Kailash.
PRELOADED_MODULES = frozenset(
    {
        "base64",
        "collections",
        "copy",
        "csv",
        "datetime",
        "functools",
        "hashlib",
        "itertools",
        "json",
        "math",
        "random",
        "re",
        "statistics",
        "string",
        "time",
        "uuid",
    }
)
# Kailash constructor options that kailash_nb does not implement; accepting them
# silently would promise a sandbox or a check that does not happen (``None``,
# Kailash's default, is accepted and ignored).
_UNSUPPORTED_OPTIONS = frozenset(
    {
        "max_code_lines",
        "validate_security",
        "sandbox_mode",
    }
)
_TYPE_NAMES: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list,
    "dict": dict,
    "Any": Any,
}


@functools.lru_cache(maxsize=2048)
def _snippet_scope(
    free: tuple[str, ...], modules: frozenset[str]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The globals template of a snippet (builtins plus the preloaded modules it
    uses) and its input names; shared by every node running the same snippet."""
    scope: dict[str, Any] = {"__builtins__": builtins, "__name__": "kailash_nb.node"}
    inputs = []
    for name in free:
        if name in modules:
            scope[name] = importlib.import_module(name)
        else:
            inputs.append(name)
    return scope, tuple(inputs)


# The node's workflow-context methods, callable by name in a snippet (as in Kailash).
_CONTEXT_FUNCTIONS = ("get_workflow_context", "set_workflow_context")

_REQUIRED_INPUT = "read by the code"
_OPTIONAL_INPUT = "read by the code if given (it is ready to find the name undefined)"


@functools.lru_cache(maxsize=2048)
def _untyped_parameters(
    names: tuple[str, ...], optional: frozenset[str]
) -> dict[str, NodeParameter]:
    return {
        name: NodeParameter(
            name=name,
            required=name not in optional,
            description=_OPTIONAL_INPUT if name in optional else _REQUIRED_INPUT,
        )
        for name in names
    }


class CodeRunner:
    """Shared machinery of the sync and async code nodes."""

    config_only_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "code",
            "function",
            "class_type",
            "process_method",
            "input_types",
            "output_type",
            "input_schema",
            "output_schema",
        }
    )
    _compile_flags: ClassVar[int] = 0
    _extra_modules: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str | None = None, **config: Any) -> None:
        if name is not None:
            config["name"] = name
        super().__init__(**config)
        # An optional input nobody gives stays undefined, so the snippet's
        # ``except NameError`` branch (or its ``locals()`` check) sees it missing.
        for optional in self._optional_names - self.config.keys():
            self._base_kwargs.pop(optional, None)

    def _prepare(self) -> None:
        config = self.config
        for option in sorted(_UNSUPPORTED_OPTIONS & config.keys()):
            if config[option] is None:
                del config[option]
                continue
            raise NodeConfigurationError(
                f"node {self.id!r}: option {option!r} is not supported; kailash_nb code nodes "
                "run trusted code, with no sandbox or code-length limit to configure"
            )
        sources = [key for key in ("code", "function", "class_type") if config.get(key) is not None]
        if len(sources) != 1:
            raise NodeConfigurationError(
                f"node {self.id!r} ({self.type_name()}): give exactly one of 'code' (a string), "
                f"'function' (a callable) or 'class_type' (a class); given {sources}"
            )
        self._input_types = self._read_input_types(config.get("input_types"))
        self._input_schema = self._read_schema(config, "input_schema")
        self._declared_outputs = self._read_schema(config, "output_schema")
        self._class: type | None = None
        if sources == ["code"]:
            self._prepare_code(config["code"])
        elif sources == ["function"]:
            self._prepare_function(config["function"])
        else:
            self._prepare_class(config["class_type"], config.get("process_method"))

    def _read_schema(self, config: dict[str, Any], key: str) -> dict[str, NodeParameter]:
        schema = config.get(key)
        if schema is None:
            return {}
        if not isinstance(schema, dict) or not all(
            isinstance(name, str) and isinstance(parameter, NodeParameter)
            for name, parameter in schema.items()
        ):
            raise NodeConfigurationError(
                f"node {self.id!r}: {key!r} must map names to NodeParameter declarations"
            )
        return dict(schema)

    def _read_input_types(self, input_types: Any) -> dict[str, Any]:
        if input_types is None:
            return {}
        if not isinstance(input_types, dict):
            raise NodeConfigurationError(
                f"node {self.id!r}: 'input_types' must map input names to types"
            )
        resolved = {}
        for name, declared in input_types.items():
            if isinstance(declared, str):
                if declared not in _TYPE_NAMES:
                    raise NodeConfigurationError(
                        f"node {self.id!r}: input_types[{name!r}] = {declared!r} is not one of "
                        f"{sorted(_TYPE_NAMES)}"
                    )
                declared = _TYPE_NAMES[declared]
            resolved[name] = declared
        return resolved

    def _prepare_code(self, code: Any) -> None:
        if not isinstance(code, str) or not code.strip():
            raise NodeConfigurationError(
                f"node {self.id!r}: 'code' must be a non-empty string of Python"
            )
        try:
            analysis = analyze(code, self._compile_flags)
        except SyntaxError as exc:
            raise NodeConfigurationError(
                f"node {self.id!r}: invalid Python in 'code' at line {exc.lineno}: {exc.msg}"
            ) from None
        self._code = analysis.code
        self._bounded = analysis.bounded
        self._bound_names = analysis.bound_names
        self._globals, inputs = _snippet_scope(
            analysis.free_names, self._PRELOADED | self._extra_modules
        )
        self._context_functions = tuple(name for name in _CONTEXT_FUNCTIONS if name in inputs)
        inputs = tuple(name for name in inputs if name not in _CONTEXT_FUNCTIONS)
        optional = tuple(name for name in analysis.optional_names if name not in self._globals)
        self._input_names = inputs + tuple(name for name in optional if name not in inputs)
        self._optional_names = frozenset(optional)
        self._function = None

    _PRELOADED: ClassVar[frozenset[str]] = PRELOADED_MODULES

    def _prepare_function(self, function: Any) -> None:
        if not callable(function):
            raise NodeConfigurationError(f"node {self.id!r}: 'function' must be callable")
        self._function = function
        self._code = None
        self._bounded = False
        self._optional_names = frozenset()
        try:
            # Resolve postponed (string) annotations so they can be coerced.
            self._signature = inspect.signature(function, eval_str=True)
        except (NameError, SyntaxError, TypeError):
            self._signature = inspect.signature(function)
        if any(p.kind is p.VAR_POSITIONAL for p in self._signature.parameters.values()):
            raise NodeConfigurationError(
                f"node {self.id!r}: function {function.__name__!r} takes *args; node inputs are "
                "passed by name, so declare named parameters"
            )
        self.accepts_extra_inputs = any(
            p.kind is p.VAR_KEYWORD for p in self._signature.parameters.values()
        )

    def _prepare_class(self, class_type: Any, method_name: Any) -> None:
        if not isinstance(class_type, type):
            raise NodeConfigurationError(f"node {self.id!r}: 'class_type' must be a class")
        if method_name is not None and not isinstance(method_name, str):
            raise NodeConfigurationError(f"node {self.id!r}: 'process_method' must be a name")
        self._method_name = process_method(class_type, method_name)
        self._prepare_function(getattr(class_type, self._method_name))
        parameters = list(self._signature.parameters.values())
        if parameters and parameters[0].name == "self":
            self._signature = self._signature.replace(parameters=parameters[1:])
        self._class = class_type

    def _class_method(self) -> Callable[..., Any]:
        """The process method of a new instance of the wrapped class (one per run)."""
        assert self._class is not None
        return getattr(self._class(), self._method_name)

    @property
    def bounded(self) -> bool:
        """True when the node's code provably runs in time linear in the size of its
        inputs: straight-line glue code without calls, loops or costly operators
        (``kailash_nb.nodes._code_analysis.is_bounded``); ``False`` for functions."""
        return self._bounded

    def get_parameters(self) -> dict[str, NodeParameter]:
        """Inputs read off the code's free names, or off the function's signature,
        overridden by the declarations of ``input_schema`` (as in Kailash).

        A name the code is ready to find undefined (read under ``try``/``except
        NameError``, copied onto itself there, or looked up with ``locals().get``,
        ``"x" in locals()`` and the like) is an optional input: not required, and
        left undefined when nothing gives it."""
        derived = self._derived_parameters()
        return {**derived, **self._input_schema} if self._input_schema else derived

    def get_output_schema(self) -> dict[str, NodeParameter]:
        """The outputs declared with ``output_schema`` (checked on every run), if any."""
        return self._declared_outputs

    def _derived_parameters(self) -> dict[str, NodeParameter]:
        if self._function is None:
            optional = self._optional_names
            if not self._input_types:
                return dict(_untyped_parameters(self._input_names, optional))
            return {
                name: NodeParameter(
                    name=name,
                    type=self._input_types.get(name, Any),
                    required=name not in optional,
                    description=_OPTIONAL_INPUT if name in optional else _REQUIRED_INPUT,
                )
                for name in self._input_names
            }
        parameters = {}
        for name, parameter in self._signature.parameters.items():
            if parameter.kind is parameter.VAR_KEYWORD:
                continue
            annotation = self._input_types.get(name, parameter.annotation)
            if annotation is inspect.Parameter.empty or isinstance(annotation, str):
                annotation = Any
            has_default = parameter.default is not inspect.Parameter.empty
            parameters[name] = NodeParameter(
                name=name,
                type=annotation,
                required=not has_default,
                default=parameter.default if has_default else None,
            )
        return parameters

    def _namespace(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        namespace = dict(self._globals)
        for name in self._context_functions:
            namespace[name] = getattr(self, name)
        namespace.update(kwargs)
        return namespace

    def _outputs_from(self, namespace: dict[str, Any]) -> dict[str, Any]:
        if "result" in self._bound_names:
            return {"result": namespace.get("result")}
        return {
            name: namespace[name]
            for name in sorted(self._bound_names)
            if name in namespace
            and not name.startswith("_")
            and not isinstance(namespace[name], (types.ModuleType, types.FunctionType, type))
        }

    @staticmethod
    def _wrap_return(value: Any) -> dict[str, Any]:
        if isinstance(value, dict) and "result" in value:
            return value
        return {"result": value}
