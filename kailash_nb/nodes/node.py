"""Nodes: the unit of work in a workflow.

A node class declares its inputs with ``get_parameters()`` and does its work in
``run(**kwargs) -> dict``. Configuration given at construction is validated and
coerced against the declared types right away, so a bad workflow fails at
``build()``, not halfway through a run::

    class Scale(Node):
        def get_parameters(self):
            return {
                "value": NodeParameter(name="value", type=float, required=True),
                "factor": NodeParameter(name="factor", type=float, required=False, default=2.0),
            }

        def run(self, value, factor):
            return {"result": value * factor}

    Scale(factor="3").execute(value=10)   # {"result": 30.0}
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from kailash_nb.nodes._checks import checked_inputs, checked_outputs, parameter_schema
from kailash_nb.nodes.metadata import NodeMetadata
from kailash_nb.nodes.types import coerce, is_any_type
from kailash_nb.redaction import looks_secret, redact_config, scrub_secrets
from kailash_nb.sdk_exceptions import (
    KailashException,
    NodeConfigurationError,
    NodeExecutionError,
    NodeValidationError,
    close_matches,
)

__all__ = ["Node", "NodeParameter"]

# Keys a Kailash node accepts as metadata rather than as parameters.
_METADATA_KEYS = frozenset({"id", "name", "description", "version", "author", "tags", "metadata"})


class NodeParameter(BaseModel):
    """Declaration of one node input.

    Attributes:
        name: the input's name, as used in ``run(**kwargs)`` and in connections.
        type: the Python type values are coerced to (``None`` or ``Any`` accepts anything).
        required: whether a run fails before it starts when no value is provided and
            there is no ``default``.
        default: value used when the input is not provided (a required input with a
            default is never missing, as in Kailash).
        description: one line shown in node listings and schemas.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True, extra="forbid")

    name: str
    type: Any = None
    required: bool = True
    default: Any = None
    description: str = ""


# Metadata keys whose string values always validate (checked when first read).
_PLAIN_METADATA = frozenset({"id", "name", "description", "version", "author"})


@functools.lru_cache(maxsize=1024)
def _class_doc(cls: type) -> str:
    """A node class's docstring, the default description of its nodes."""
    return inspect.getdoc(cls) or ""


def _is_internal(key: Any) -> bool:
    """A config key starting with one underscore: Kailash's internal keys."""
    return isinstance(key, str) and key.startswith("_") and not key.startswith("__")


# Attributes Node.__init__ derives from config and parameters (see _derive_inputs).
_DERIVED = frozenset({"_base_kwargs", "_required_names", "_typed_parameters"})


class _TypeNameId:
    """``Node.id`` of an instance whose ``__init__`` did not set one: its type name.

    A non-data descriptor, so the ``id`` ``Node.__init__`` sets on the instance wins.
    """

    def __get__(self, instance: Node | None, owner: type[Node]) -> Any:
        return self if instance is None else owner.type_name()


class Node:
    """Base class of every node.

    Subclasses implement ``get_parameters()`` and ``run(**kwargs)``. The constructor
    takes the node's configuration as keyword arguments; ``id`` and the Kailash
    metadata keys (``name``, ``description``, ``version``, ``author``, ``tags``,
    ``metadata``) are kept as metadata unless the node declares a parameter of that name.
    Keys starting with one underscore are internal, as in Kailash: ``_node_id`` sets the
    node's id and the others are left out of the configuration (unless the class lists
    them in ``config_only_keys``).

    Raises:
        NodeConfigurationError: unknown configuration key, or a value that cannot be
            coerced to the declared type.
    """

    #: Registered type name; set by ``register_node``.
    _type_name: ClassVar[str | None] = None
    #: True for nodes whose work is a coroutine (``AsyncNode``).
    is_async: ClassVar[bool] = False
    #: True for nodes that accept inputs they do not declare (code nodes).
    accepts_extra_inputs: ClassVar[bool] = False
    #: True for nodes that route data to one of several outputs (``SwitchNode``);
    #: the engine skips nodes fed only by ``None`` from such nodes.
    is_branching: ClassVar[bool] = False
    #: Config keys a node accepts that are not inputs (e.g. a code node's ``code``).
    config_only_keys: ClassVar[frozenset[str]] = frozenset()
    #: Inputs only the workflow's own code may set (a Python caller, a connection),
    #: never a gateway's caller: they change state every caller shares (the members of
    #: an agent pool). The gateway leaves them out of a served workflow's inputs.
    trusted_input_keys: ClassVar[frozenset[str]] = frozenset()
    #: The node's id; a subclass whose ``__init__`` skips ``Node.__init__`` still has
    #: one (its type name, or its id in the workflow that holds it).
    id: str = _TypeNameId()  # type: ignore[assignment]

    def __init__(self, **config: Any) -> None:
        keep = self.config_only_keys
        self.config: dict[str, Any] = {
            key: value for key, value in config.items() if key in keep or not _is_internal(key)
        }
        node_id = config.get("_node_id") or config.get("id")
        self.id: str = str(node_id or type(self).type_name())
        self._prepare()
        parameters = self.parameters
        given: dict[str, Any] = {}
        if not _METADATA_KEYS.isdisjoint(self.config):
            for key in sorted(_METADATA_KEYS - parameters.keys()):
                if key in self.config:
                    given[key] = self.config.pop(key)
        self.__dict__["_metadata_given"] = given
        if not all(key in _PLAIN_METADATA and type(value) is str for key, value in given.items()):
            # Anything that may not validate is checked now; plain strings are made
            # into NodeMetadata on first use, which keeps building a node cheap.
            self.__dict__["_metadata"] = self._metadata_from(given)
        self.config = self._validated_config(self.config, parameters)
        self._derive_inputs()

    def _derive_inputs(self) -> None:
        """Precompute from ``config`` and ``parameters`` what ``merge_inputs`` needs."""
        parameters = self.parameters
        base: dict[str, Any] = {}
        required: list[str] = []
        typed: list[tuple[str, Any]] = []
        for name, parameter in parameters.items():
            if parameter.required and parameter.default is None:
                required.append(name)
            else:
                base[name] = parameter.default
            if not is_any_type(parameter.type):
                typed.append((name, parameter.type))
        config_only = self.config_only_keys
        for key, value in self.config.items():
            if key not in config_only:
                base[key] = value
        self._base_kwargs = base
        self._required_names = tuple(required)
        self._typed_parameters = tuple(typed)

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes Node.__init__ sets, on an instance whose own
        # __init__ skipped it (as Kailash allows): derive them from what it has.
        if name == "config":
            self.config = {}
            return self.config
        if name == "_workflow_context":
            self._workflow_context: dict[str, Any] = {}
            return self._workflow_context
        if name in _DERIVED and "_derived" not in self.__dict__:
            self.__dict__["_derived"] = True
            self._derive_inputs()
            return getattr(self, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- what subclasses implement ------------------------------------------------
    def get_parameters(self) -> dict[str, NodeParameter]:
        """Return the inputs this node accepts, keyed by name."""
        return {}

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Do the node's work and return its outputs as a dict."""
        raise NotImplementedError(f"{type(self).__name__} must implement run(**kwargs)")

    def get_output_schema(self) -> dict[str, NodeParameter]:
        """Return the outputs this node promises, keyed by name (none by default).

        When a node declares outputs, every run's outputs are checked against them
        (see ``validate_outputs``); outputs not declared pass unchecked.
        """
        return {}

    def _prepare(self) -> None:
        """Hook run before parameters are read, with the raw ``self.config`` in place."""

    # -- public API ---------------------------------------------------------------
    @classmethod
    def type_name(cls) -> str:
        """The name this class is registered under (its class name by default)."""
        return cls.__dict__.get("_type_name") or cls.__name__

    @property
    def metadata(self) -> NodeMetadata:
        """The node's ``NodeMetadata`` (name, description, version, author, tags, ...);
        as a mapping it holds the metadata keys given when the node was made."""
        cached = self.__dict__.get("_metadata")
        if cached is None:
            given = self.__dict__.get("_metadata_given") or {}
            cached = self.__dict__["_metadata"] = self._metadata_from(given)
        return cached

    @metadata.setter
    def metadata(self, value: NodeMetadata | dict[str, Any]) -> None:
        self.__dict__["_metadata"] = (
            value if isinstance(value, NodeMetadata) else self._metadata_from(dict(value))
        )

    @property
    def output_schema(self) -> dict[str, NodeParameter]:
        """The declared outputs (``get_output_schema()``), computed once per node."""
        cached = self.__dict__.get("_output_schema")
        if cached is None:
            cached = self.__dict__["_output_schema"] = dict(self.get_output_schema())
        return cached

    @property
    def parameters(self) -> dict[str, NodeParameter]:
        """The declared parameters, computed once per node."""
        cached = self.__dict__.get("_parameters")
        if cached is None:
            cached = self.__dict__["_parameters"] = dict(self.get_parameters())
        return cached

    def execute(self, **inputs: Any) -> dict[str, Any]:
        """Run this node on its own: configuration overlaid with ``inputs``.

        Raises:
            NodeValidationError: an input is unknown, missing or of the wrong type.
            NodeExecutionError: ``run`` raised or returned something other than a dict.
        """
        self.check_input_names(inputs)
        return self.run_with(self.merge_inputs(inputs))

    def merge_inputs(self, runtime_inputs: dict[str, Any]) -> dict[str, Any]:
        """Overlay ``runtime_inputs`` on defaults and config, then check and coerce them."""
        kwargs = {**self._base_kwargs, **runtime_inputs}
        for name in self._required_names:
            if name not in kwargs:
                raise NodeValidationError(
                    f"node {self.id!r} ({self.type_name()}) is missing required input {name!r}; "
                    "set it in the node config, connect an output to it, or pass it as a "
                    "runtime parameter"
                )
        for name, declared in self._typed_parameters:
            if name in runtime_inputs:
                value = runtime_inputs[name]
                if value is not None:
                    try:
                        kwargs[name] = coerce(declared, value, reveal=not looks_secret(name))
                    except ValueError as exc:
                        raise NodeValidationError(
                            f"node {self.id!r} ({self.type_name()}): input {name!r} {exc}"
                        ) from None
        return kwargs

    def run_with(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Call ``run`` with already merged inputs and check that it returned a dict."""
        try:
            outputs = self.run(**kwargs)
        except KailashException:
            raise
        except Exception as exc:
            raise self.execution_error(exc) from exc
        return self.check_outputs(outputs)

    def register_metrics(self, registry: Any, *, workflow: str = "") -> None:
        """Put this node's own metrics on ``registry`` (a ``prometheus_client``
        ``CollectorRegistry``), labelled with ``workflow``'s name. A gateway calls it
        for every node of a workflow it serves, so its ``/metrics`` shows them. Most
        nodes have none; ``A2ACoordinatorNode`` shows its per-agent metrics."""

    def get_workflow_context(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` in the workflow context, else ``default``.

        The context is a dict of values nodes share; a runtime may give the nodes of
        a run one shared dict, otherwise each node has its own. In a code node's
        snippet, ``get_workflow_context`` and ``set_workflow_context`` are callable
        by name, as in Kailash.
        """
        return self._workflow_context.get(key, default)

    def set_workflow_context(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` in the workflow context (see ``get_workflow_context``)."""
        self._workflow_context[key] = value

    def execution_error(self, exc: Exception) -> NodeExecutionError:
        """The ``NodeExecutionError`` reporting that this node's work raised ``exc``;
        secrets of the node's config quoted in the message are masked (WF-13)."""
        message = f"node {self.id!r} ({self.type_name()}) failed: {type(exc).__name__}: {exc}"
        return NodeExecutionError(scrub_secrets(message, self.config))

    def check_outputs(self, outputs: Any) -> dict[str, Any]:
        """Return ``outputs`` if it is a dict (checked against the declared outputs, if
        any), else raise ``NodeExecutionError``.

        Raises:
            NodeExecutionError: ``outputs`` is not a dict.
            NodeValidationError: outputs do not match ``get_output_schema()``.
        """
        if not isinstance(outputs, dict):
            raise NodeExecutionError(
                f"node {self.id!r} ({self.type_name()}) returned {type(outputs).__name__}; "
                "run() must return a dict of outputs such as {'result': value}"
            )
        if self.output_schema:
            return self.validate_outputs(outputs)
        return outputs

    def validate_inputs(self, **inputs: Any) -> dict[str, Any]:
        """Kailash's check of ``inputs`` on their own (the configuration is not used).

        Returns the declared inputs given, coerced to their types, plus the defaults
        of required inputs not given; optional inputs given as ``None`` are left out.

        Raises:
            NodeValidationError: a required input without default is missing, a value
                cannot be coerced, or the node does not declare an input given.
        """
        return checked_inputs(
            self._label(), self.parameters, inputs, extra_ok=self.accepts_extra_inputs
        )

    def validate_outputs(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """``outputs`` checked against ``get_output_schema()``: required outputs present,
        values coerced to the declared types. Outputs need not be JSON-serialisable.

        Raises:
            NodeValidationError: not a dict, a required output missing, or a value of
                the wrong type.
        """
        return checked_outputs(self._label(), self.output_schema, outputs)

    def check_input_names(self, inputs: dict[str, Any]) -> None:
        """Raise ``NodeValidationError`` for input names this node does not declare."""
        for name in inputs:
            if name.startswith("__"):
                raise NodeValidationError(
                    f"node {self.id!r}: input name {name!r} is not allowed (dunder names are "
                    "reserved)"
                )
            if not self.accepts_extra_inputs and name not in self.parameters:
                raise NodeValidationError(
                    f"node {self.id!r} ({self.type_name()}) has no input {name!r}"
                    f"{close_matches(name, self.parameters)}; its inputs are "
                    f"{sorted(self.parameters)}"
                )

    def to_dict(self) -> dict[str, Any]:
        """The node as a dict (Kailash's layout): ``id``, ``type``, ``metadata`` and
        ``config`` (secrets redacted in both, WF-13) and ``parameters`` (type name,
        required, default and description of each)."""
        return {
            "id": self.id,
            "type": self.type_name(),
            "metadata": redact_config(self.metadata.model_dump()),
            "config": redact_config(self.config),
            "parameters": parameter_schema(self.parameters),
        }

    def __repr__(self) -> str:
        return f"<{self.type_name()} {self.id!r}>"

    # -- internals ----------------------------------------------------------------
    def _label(self) -> str:
        return f"node {self.id!r} ({self.type_name()})"

    def _metadata_from(self, given: dict[str, Any]) -> NodeMetadata:
        """The node's ``NodeMetadata``: a ``NodeMetadata`` given as ``metadata`` as is,
        else the keys given over defaults (class name, docstring, version 1.0.0)."""
        if isinstance(given.get("metadata"), NodeMetadata):
            return given["metadata"]
        defaults = {
            "id": self.id,
            "name": type(self).__name__,
            "description": _class_doc(type(self)),
        }
        try:
            return NodeMetadata.for_node(defaults, given)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()
            )
            raise NodeConfigurationError(
                f"node {self.id!r} ({self.type_name()}): invalid metadata: {problems}"
            ) from None

    def _validated_config(
        self, config: dict[str, Any], parameters: dict[str, NodeParameter]
    ) -> dict[str, Any]:
        validated: dict[str, Any] = {}
        for key, value in config.items():
            if not isinstance(key, str) or key.startswith("__"):
                raise NodeConfigurationError(f"node {self.id!r}: config key {key!r} is not allowed")
            parameter = parameters.get(key)
            if parameter is None:
                if key in self.config_only_keys:
                    validated[key] = value
                    continue
                if self.accepts_extra_inputs:
                    validated[key] = value
                    continue
                raise NodeConfigurationError(
                    f"node {self.id!r} ({self.type_name()}) has no parameter {key!r}"
                    f"{close_matches(key, parameters)}; its parameters are {sorted(parameters)}"
                )
            if value is None or is_any_type(parameter.type):
                validated[key] = value
                continue
            try:
                validated[key] = coerce(parameter.type, value, reveal=not looks_secret(key))
            except ValueError as exc:
                raise NodeConfigurationError(
                    f"node {self.id!r} ({self.type_name()}): config {key!r} {exc}"
                ) from None
        return validated
