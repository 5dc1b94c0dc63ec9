"""Cycle execution, one part of ``WorkflowRun`` (see ``kailash_nb.runtime.engine``).

A declared cycle runs its member nodes in order, iteration after iteration; after
each, the cycle's edges feed the source's outputs back and the stop rules are
checked: the loop's own exit, then ``converge_when`` (evaluated on the source node's
fields), then ``max_iterations``, then ``timeout``.

The loop exits by itself when no cycle edge carries a value back: every edge's
source either sat on a branch a ``SwitchNode`` did not take (it was skipped) or is
a branching node whose output on that edge is ``None`` (the branch not taken). This
is the "repeat until" pattern: ``counter -> SwitchNode``, the switch's
``false_output`` fed back into ``counter``, its ``true_output`` on to the node that
receives the end value. A member skipped in the last iteration keeps the outputs of
the last iteration it ran in, so the results hold the loop's end values.
"""

from __future__ import annotations

import time
from typing import Any

from kailash_nb import sdk_exceptions as errors
from kailash_nb.sdk_exceptions import WorkflowExecutionError
from kailash_nb.workflow.connection import MISSING
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
                self._keep_last_outputs(unit)
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
            await self.executor.before_cycle_check(self, unit)
            if self._cycle_finished(unit, iteration, started):
                self._keep_last_outputs(unit)
                return

    def _keep_last_outputs(self, unit: CycleUnit) -> None:
        """Give members skipped in the last iteration the outputs of the last one they
        ran in: the loop is over, and those are its end values."""
        earlier = self.earlier_cycle_outputs
        for node_id in unit.members:
            if node_id not in self.results and node_id in earlier:
                self.results[node_id] = earlier.pop(node_id)
                self.skipped.discard(node_id)

    def _cycle_finished(self, unit: CycleUnit, iteration: int, started: float) -> bool:
        try:
            return self._cycle_should_stop(unit, iteration, started)
        except (errors.ConnectionError, WorkflowExecutionError) as exc:
            self._stop(unit.source_node, exc)
            return True

    def _cycle_should_stop(self, unit: CycleUnit, iteration: int, started: float) -> bool:
        spec = unit.spec
        carried = False
        branching = self.plan.is_branching
        read_output = self.executor.read_output
        for connection in self.plan.cycle_edges[spec.cycle_id]:
            source = connection.source_node
            outputs = self.results.get(source)
            if outputs is None:
                continue  # skipped: it sat on a branch not taken
            value = read_output(outputs, connection)
            if value is MISSING:
                raise errors.ConnectionError(
                    f"cycle {spec.cycle_id!r} edge {connection}: node {source!r} produced no "
                    f"output {connection.source_output!r}; its outputs are {sorted(outputs)}"
                )
            if value is None and branching[source]:
                continue  # the branch this edge leaves by was not taken
            carried = True
            self.fed_back.setdefault(connection.target_node, {})[connection.target_input] = value
        if not carried:
            return True  # the loop left through a branch: nothing comes back
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
        names.update(_scalars(fields))
        if self.plan.is_branching[unit.source_node]:
            # A switch's fields are those of the data on the branch it took.
            for branch in source_outputs.values():
                if isinstance(branch, dict):
                    for key, value in _scalars(branch):
                        names.setdefault(key, value)
        names.update(
            (node_id, outputs) for node_id, outputs in members.items() if node_id.isidentifier()
        )
        names.update(results=members, iteration=iteration, elapsed_time=elapsed)
        return names


def _scalars(fields: dict[Any, Any]) -> list[tuple[str, Any]]:
    """The ``(name, value)`` pairs of ``fields`` a convergence expression can read."""
    return [
        (key, value)
        for key, value in fields.items()
        if isinstance(key, str) and isinstance(value, (int, float, str, bool))
    ]
