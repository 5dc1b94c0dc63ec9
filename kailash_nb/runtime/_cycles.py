"""Cycle execution, one part of ``WorkflowRun`` (see ``kailash_nb.runtime.engine``).

A declared cycle runs its member nodes in order, iteration after iteration; after
each, the cycle's edges feed the source's outputs back and the stop rules are
checked: ``converge_when`` (evaluated on the source node's fields), then
``max_iterations``, then ``timeout``.
"""

from __future__ import annotations

import time
from typing import Any

from kailash_nb import sdk_exceptions as errors
from kailash_nb.sdk_exceptions import WorkflowExecutionError
from kailash_nb.workflow.connection import MISSING, read_output
from kailash_nb.workflow.expressions import evaluate_condition
from kailash_nb.workflow.plan import DEFAULT_CYCLE_ITERATION_CAP, CycleUnit

__all__ = ["CycleExecution"]


class CycleExecution:
    """Mixin of ``WorkflowRun``: runs ``CycleUnit``s (uses the run's node runners)."""

    def _run_cycle_inline(self, unit: CycleUnit) -> None:
        started = time.monotonic()
        iteration = 0
        while True:
            iteration += 1
            for node_id in unit.members:
                self._run_node_inline(node_id, iteration)
                if self.failure is not None:
                    return
            if self._cycle_finished(unit, iteration, started):
                return

    async def _run_cycle(self, unit: CycleUnit) -> None:
        started = time.monotonic()
        iteration = 0
        while True:
            iteration += 1
            for node_id in unit.members:
                await self._run_node(node_id, iteration)
                if self.failure is not None:
                    return
            if self._cycle_finished(unit, iteration, started):
                return

    def _cycle_finished(self, unit: CycleUnit, iteration: int, started: float) -> bool:
        try:
            return self._cycle_should_stop(unit, iteration, started)
        except (errors.ConnectionError, WorkflowExecutionError) as exc:
            self._stop(unit.source_node, exc)
            return True

    def _cycle_should_stop(self, unit: CycleUnit, iteration: int, started: float) -> bool:
        spec = unit.spec
        for connection in self.plan.cycle_edges[spec.cycle_id]:
            outputs = self.results.get(connection.source_node)
            value = None if outputs is None else read_output(outputs, connection)
            if value is MISSING:
                raise errors.ConnectionError(
                    f"cycle {spec.cycle_id!r} edge {connection}: node "
                    f"{connection.source_node!r} produced no output "
                    f"{connection.source_output!r}; its outputs are {sorted(outputs or {})}"
                )
            self.fed_back.setdefault(connection.target_node, {})[connection.target_input] = value
        elapsed = time.monotonic() - started
        if unit.condition is not None:
            names = self._convergence_names(unit, iteration, elapsed)
            try:
                converged = evaluate_condition(unit.condition, names)
            except Exception as exc:
                raise WorkflowExecutionError(
                    f"cycle {spec.cycle_id!r}: converge_when {spec.converge_when!r} failed after "
                    f"iteration {iteration}: {type(exc).__name__}: {exc}; available names: "
                    f"{sorted(names)}",
                    results=dict(self.results),
                    run_id=self.run_id,
                ) from exc
            if converged:
                return True
        if spec.max_iterations is not None and iteration >= spec.max_iterations:
            return True
        if spec.timeout is not None and elapsed >= spec.timeout:
            return True
        if (
            spec.max_iterations is None
            and spec.timeout is None
            and (iteration >= DEFAULT_CYCLE_ITERATION_CAP)
        ):
            raise WorkflowExecutionError(
                f"cycle {spec.cycle_id!r} did not converge within {DEFAULT_CYCLE_ITERATION_CAP} "
                "iterations; set max_iterations(n) or timeout(seconds) to bound it",
                results=dict(self.results),
                run_id=self.run_id,
            )
        return False

    def _convergence_names(self, unit: CycleUnit, iteration: int, elapsed: float) -> dict[str, Any]:
        members = {node_id: self.results.get(node_id) for node_id in unit.members}
        names: dict[str, Any] = {}
        source_outputs = members.get(unit.source_node) or {}
        fields = source_outputs.get("result")
        if not isinstance(fields, dict):
            fields = source_outputs
        names.update(
            (key, value)
            for key, value in fields.items()
            if isinstance(key, str) and isinstance(value, (int, float, str, bool))
        )
        names.update(
            (node_id, outputs) for node_id, outputs in members.items() if node_id.isidentifier()
        )
        names.update(results=members, iteration=iteration, elapsed_time=elapsed)
        return names
