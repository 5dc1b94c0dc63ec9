"""Connections between node outputs and node inputs, and reading dotted output paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kailash_nb import sdk_exceptions as errors

__all__ = [
    "MISSING",
    "WORKFLOW_INPUT",
    "Connection",
    "CyclicConnection",
    "NodeOptions",
    "read_output",
]

#: Source node of the connections ``WorkflowBuilder.add_input_connection`` lists: the
#: workflow's own run parameters (Kailash's name).
WORKFLOW_INPUT = "__workflow_input__"


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: Returned by ``read_output`` when the path does not exist in the outputs.
MISSING: Any = _Missing()


# Kailash's keys of a connection dict -> Connection field.
_KAILASH_KEYS = {
    "from_node": "source_node",
    "from_output": "source_output",
    "to_node": "target_node",
    "to_input": "target_input",
    "source_node": "source_node",
    "source_output": "source_output",
    "target_node": "target_node",
    "target_input": "target_input",
    "cycle_id": "cycle_id",
}


@dataclass(frozen=True, slots=True)
class Connection:
    """One edge: ``source_node.source_output -> target_node.target_input``.

    ``source_output`` may be a dotted path into nested dicts (``"result.data.rows"``).
    ``cycle_id`` is set on the edges that close a declared cycle.
    """

    source_node: str
    source_output: str
    target_node: str
    target_input: str
    cycle_id: str | None = None
    _path: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_path", tuple(self.source_output.split(".")))

    def __str__(self) -> str:
        return f"{self.source_node}.{self.source_output} -> {self.target_node}.{self.target_input}"

    def __getitem__(self, key: str) -> Any:
        """Read a field by its Kailash key, as Kailash code indexes its connection dicts:
        ``from_node``/``from_output``/``to_node``/``to_input`` (or the ``source_*`` and
        ``target_*`` names); ``is_workflow_input`` is ``True`` on the connections from
        workflow-level run parameters (source ``WORKFLOW_INPUT``) and absent on others,
        as in Kailash's dicts."""
        if key == "is_workflow_input" and self.source_node == WORKFLOW_INPUT:
            return True
        try:
            return getattr(self, _KAILASH_KEYS[key])
        except (KeyError, TypeError):
            raise KeyError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        """``self[key]``, or ``default`` for a key a connection does not have."""
        try:
            return self[key]
        except KeyError:
            return default

    def to_dict(self) -> dict[str, Any]:
        """Kailash's connection entry: ``source_node``/``source_output``/``target_*``."""
        return {
            "source_node": self.source_node,
            "source_output": self.source_output,
            "target_node": self.target_node,
            "target_input": self.target_input,
        }


@dataclass(frozen=True, slots=True)
class CyclicConnection(Connection):
    """A connection with Kailash's cycle settings, as Kailash's ``CyclicConnection``
    describes a cycle edge.

    kailash_nb declares cycles with ``create_cycle(id)`` (``CycleSpec`` holds what
    a run uses); this record carries the same settings for code that builds or reads
    Kailash's cycle-edge descriptions.
    """

    cycle: bool = False
    max_iterations: int | None = None
    convergence_check: str | None = None
    timeout: float | None = None
    memory_limit: int | None = None
    condition: str | None = None
    parent_cycle: str | None = None


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """How the engine runs one node.

    Attributes:
        timeout: seconds one attempt may take; ``None`` uses the runtime's ``node_timeout``.
        retries: extra attempts after a failure; ``None`` uses the runtime's ``node_retries``.
        retry_delay: seconds before the first retry, doubled for each further retry.
    """

    timeout: float | None = None
    retries: int | None = None
    retry_delay: float = 0.1

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.retries is not None and (not isinstance(self.retries, int) or self.retries < 0):
            raise ValueError(f"retries must be a non-negative int, got {self.retries!r}")
        if not self.retry_delay >= 0:
            raise ValueError(f"retry_delay must be >= 0, got {self.retry_delay!r}")

    def to_dict(self) -> dict[str, Any]:
        """The options that differ from the defaults."""
        defaults = NodeOptions()
        return {
            name: getattr(self, name)
            for name in ("timeout", "retries", "retry_delay")
            if getattr(self, name) != getattr(defaults, name)
        }


def read_output(outputs: dict[str, Any], connection: Connection) -> Any:
    """Value of ``connection.source_output`` in ``outputs``; ``MISSING`` if absent.

    A key that literally contains dots wins over walking the path. Walking through a
    ``None`` gives ``None`` (the branch carried no data); walking into something that
    is not a dict raises ``ConnectionError``.
    """
    path = connection._path
    value = outputs.get(path[0], MISSING)
    if len(path) == 1:
        return value
    if connection.source_output in outputs:
        return outputs[connection.source_output]
    for depth, key in enumerate(path[1:], start=1):
        if value is MISSING or value is None:
            return value
        if not isinstance(value, dict):
            walked = ".".join(path[:depth])
            raise errors.ConnectionError(
                f"connection {connection}: {walked!r} of node {connection.source_node!r} is a "
                f"{type(value).__name__}, not a dict, so {key!r} cannot be read from it"
            )
        value = value.get(key, MISSING)
    return value
