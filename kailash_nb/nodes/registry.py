"""The node registry: node classes looked up by type name.

Workflow definitions name node types by string (``"PythonCodeNode"``); the registry
is the only way such a name becomes a class, so a definition can never import an
arbitrary dotted path. Built-in node families are imported on first lookup, which
keeps ``import kailash_nb`` cheap.
"""

from __future__ import annotations

import importlib
import threading
from typing import ClassVar, TypeVar

from kailash_nb.nodes.node import Node
from kailash_nb.sdk_exceptions import NodeConfigurationError, close_matches

__all__ = ["NodeRegistry", "register_node"]

NodeClass = TypeVar("NodeClass", bound="type[Node]")

# Built-in node type -> module that registers it when imported.
_BUILTIN_MODULES: dict[str, str] = {
    "PythonCodeNode": "kailash_nb.nodes.code.python",
    "AsyncPythonCodeNode": "kailash_nb.nodes.code.python",
    "SwitchNode": "kailash_nb.nodes.logic.operations",
    "MergeNode": "kailash_nb.nodes.logic.operations",
    "AsyncSwitchNode": "kailash_nb.nodes.logic.async_operations",
    "AsyncMergeNode": "kailash_nb.nodes.logic.async_operations",
    "CSVReaderNode": "kailash_nb.nodes.data._nodes",
    "CSVWriterNode": "kailash_nb.nodes.data._nodes",
    "JSONReaderNode": "kailash_nb.nodes.data._nodes",
    "JSONWriterNode": "kailash_nb.nodes.data._nodes",
    "TextReaderNode": "kailash_nb.nodes.data.readers",
    "SQLDatabaseNode": "kailash_nb.nodes.data._nodes",
    "AsyncSQLDatabaseNode": "kailash_nb.nodes.data._nodes",
    "HTTPRequestNode": "kailash_nb.nodes.api",
    "AsyncHTTPRequestNode": "kailash_nb.nodes.api",
    "MCPToolNode": "kailash_nb.nodes.mcp.tool_node",
    "AsyncMCPToolNode": "kailash_nb.nodes.mcp.tool_node",
    "DistributedTransactionManagerNode": "kailash_nb.nodes.transaction.coordinators",
    "SagaCoordinatorNode": "kailash_nb.nodes.transaction.coordinators",
    "TwoPhaseCommitCoordinatorNode": "kailash_nb.nodes.transaction.coordinators",
    "MultiFactorAuthNode": "kailash_nb.nodes.security.mfa",
    "ComplianceMonitorNode": "kailash_nb.nodes.security.compliance",
    "ThreatDetectionNode": "kailash_nb.nodes.security.threats",
    "GDPRComplianceNode": "kailash_nb.nodes.security.gdpr",
    "LLMAgentNode": "kailash_nb.nodes.ai.llm_agent",
    "AgentPoolManagerNode": "kailash_nb.nodes.ai.self_organizing",
    "A2ACoordinatorNode": "kailash_nb.nodes.ai.a2a",
}


class NodeRegistry:
    """Process-wide map from node type name to node class.

    Registering the same name again from the same module and class name replaces the
    entry (a re-run notebook cell or a reloaded module); registering it from another
    module raises ``NodeConfigurationError`` instead of silently shadowing a node.
    """

    _nodes: ClassVar[dict[str, type[Node]]] = {}
    _lock = threading.Lock()

    @classmethod
    def register(cls, node_class: type[Node], alias: str | None = None) -> type[Node]:
        """Register ``node_class`` under ``alias`` (default: the class name) and return it."""
        if not (isinstance(node_class, type) and issubclass(node_class, Node)):
            raise NodeConfigurationError(
                f"cannot register {node_class!r}: only subclasses of kailash_nb.nodes.base.Node "
                "can be registered"
            )
        name = alias or node_class.__name__
        if not name.isidentifier():
            raise NodeConfigurationError(
                f"cannot register node type {name!r}: a type name must be a Python identifier"
            )
        builtin_module = _BUILTIN_MODULES.get(name)
        if builtin_module is not None and node_class.__module__ != builtin_module:
            raise NodeConfigurationError(
                f"node type {name!r} is already registered by the built-in {builtin_module}; "
                "register "
                f"{node_class.__module__}.{node_class.__qualname__} under another name with "
                "@register_node(alias=...)"
            )
        with cls._lock:
            existing = cls._nodes.get(name)
            if (
                existing is not None
                and existing is not node_class
                and not _same_definition(existing, node_class)
            ):
                raise NodeConfigurationError(
                    f"node type {name!r} is already registered by "
                    f"{existing.__module__}.{existing.__qualname__}; register "
                    f"{node_class.__module__}.{node_class.__qualname__} under another name "
                    "with @register_node(alias=...)"
                )
            cls._nodes[name] = node_class
        node_class._type_name = name
        return node_class

    @classmethod
    def unregister(cls, name: str) -> None:
        """Remove ``name`` from the registry (mainly for tests and notebooks)."""
        with cls._lock:
            cls._nodes.pop(name, None)

    @classmethod
    def get(cls, name: str) -> type[Node]:
        """Return the class registered as ``name``.

        Raises:
            NodeConfigurationError: no such type; the message lists close matches.
        """
        node_class = cls._nodes.get(name)
        if node_class is not None:
            return node_class
        module = _BUILTIN_MODULES.get(name) if isinstance(name, str) else None
        if module is not None:
            importlib.import_module(module)
            node_class = cls._nodes.get(name)
            if node_class is not None:
                return node_class
        raise NodeConfigurationError(
            f"unknown node type {name!r}{close_matches(str(name), cls.names())}; "
            "see NodeRegistry.list() for the registered types"
        )

    @classmethod
    def names(cls) -> list[str]:
        """All registered and built-in type names, sorted."""
        return sorted(set(cls._nodes) | set(_BUILTIN_MODULES))

    @classmethod
    def list(cls) -> dict[str, type[Node]]:
        """Every node type, built-in families included, as ``{name: class}``."""
        for module in sorted(set(_BUILTIN_MODULES.values())):
            importlib.import_module(module)
        return dict(sorted(cls._nodes.items()))


def _same_definition(existing: type, candidate: type) -> bool:
    return (existing.__module__, existing.__qualname__) == (
        candidate.__module__,
        candidate.__qualname__,
    )


def register_node(alias: str | None = None):
    """Class decorator that registers a node type.

    Usage::

        @register_node()
        class Doubler(Node):
            ...

    ``@register_node`` without parentheses works too.
    """
    if isinstance(alias, type):
        return NodeRegistry.register(alias)

    def decorate(node_class: NodeClass) -> NodeClass:
        NodeRegistry.register(node_class, alias)
        return node_class

    return decorate
