"""Explicit cycles: ``create_cycle(id).connect(...).max_iterations(n).build()``.

A cycle re-runs the nodes between its target and its source until a stop rule
holds. Its edges feed the source node's outputs back into the target node's
inputs for the next iteration. At least one stop rule is required:
``max_iterations(n)``, ``converge_when("expr")`` or ``timeout(seconds)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType
from typing import Any

from kailash_nb.sdk_exceptions import CycleConfigurationError
from kailash_nb.workflow.connection import Connection
from kailash_nb.workflow.expressions import compile_condition

__all__ = ["CycleBuilder", "CycleSpec"]

_MAX_ITERATIONS_CAP = 100_000


@dataclass(frozen=True)
class CycleSpec:
    """A declared cycle: its closing edges and its stop rules.

    The convergence expression is evaluated after every iteration with these names:
    ``iteration`` (iterations completed), ``elapsed_time`` (seconds), ``results``
    (node id -> outputs of the cycle's nodes), each cycle node's id (its outputs),
    and the scalar fields of the source node's output: the keys of its ``result``
    when that is a dict, else its top-level keys (so ``"done == True"`` and
    ``"count >= 3"`` read naturally).
    """

    cycle_id: str
    connections: tuple[Connection, ...]
    max_iterations: int | None = None
    converge_when: str | None = None
    timeout: float | None = None

    @property
    def condition(self) -> CodeType | None:
        """The compiled convergence expression, or ``None``."""
        if self.converge_when is None:
            return None
        return compile_condition(self.converge_when, f"cycle {self.cycle_id!r}")

    def to_dict(self) -> dict[str, Any]:
        """The stop rules as Kailash writes them on cycle connection entries."""
        return {
            "cycle": True,
            "cycle_id": self.cycle_id,
            "max_iterations": self.max_iterations,
            "convergence_check": self.converge_when,
            "timeout": self.timeout,
        }


class CycleBuilder:
    """Fluent builder returned by ``create_cycle``; ``build()`` adds the cycle."""

    def __init__(self, cycle_id: str, add_cycle: Callable[[CycleSpec], None]) -> None:
        if not isinstance(cycle_id, str) or not cycle_id:
            raise CycleConfigurationError("create_cycle needs a non-empty cycle id")
        self._cycle_id = cycle_id
        self._add_cycle = add_cycle
        self._connections: list[Connection] = []
        self._max_iterations: int | None = None
        self._converge_when: str | None = None
        self._timeout: float | None = None

    def connect(
        self, source_node: str, target_node: str, mapping: dict[str, str] | None = None
    ) -> CycleBuilder:
        """Feed ``source_node`` outputs back to ``target_node`` inputs: ``{output: input}``."""
        if not mapping or not isinstance(mapping, dict):
            raise CycleConfigurationError(
                f"cycle {self._cycle_id!r}: connect({source_node!r}, {target_node!r}) needs a "
                "mapping such as {'result': 'value'}"
            )
        for output, target_input in mapping.items():
            self._connections.append(
                Connection(source_node, output, target_node, target_input, self._cycle_id)
            )
        return self

    def max_iterations(self, count: int) -> CycleBuilder:
        """Stop after ``count`` iterations (1 .. 100,000)."""
        if (
            isinstance(count, bool)
            or not isinstance(count, int)
            or not (0 < count <= _MAX_ITERATIONS_CAP)
        ):
            raise CycleConfigurationError(
                f"cycle {self._cycle_id!r}: max_iterations must be an int from 1 to "
                f"{_MAX_ITERATIONS_CAP}, got {count!r}"
            )
        self._max_iterations = count
        return self

    def converge_when(self, expression: str) -> CycleBuilder:
        """Stop once ``expression`` is true after an iteration (checked now)."""
        compile_condition(expression, f"cycle {self._cycle_id!r}")
        self._converge_when = expression
        return self

    def timeout(self, seconds: float) -> CycleBuilder:
        """Stop starting new iterations once ``seconds`` have passed."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise CycleConfigurationError(
                f"cycle {self._cycle_id!r}: timeout must be a positive number of seconds"
            )
        self._timeout = float(seconds)
        return self

    def build(self) -> None:
        """Validate and add the cycle to its workflow (or builder)."""
        if not self._connections:
            raise CycleConfigurationError(
                f"cycle {self._cycle_id!r} has no edges; call .connect(source, target, mapping)"
            )
        if self._max_iterations is None and self._converge_when is None and self._timeout is None:
            raise CycleConfigurationError(
                f"cycle {self._cycle_id!r} has no stop rule; set max_iterations(n), "
                "converge_when('expr') or timeout(seconds)"
            )
        self._add_cycle(
            CycleSpec(
                cycle_id=self._cycle_id,
                connections=tuple(self._connections),
                max_iterations=self._max_iterations,
                converge_when=self._converge_when,
                timeout=self._timeout,
            )
        )
