"""``NodeGuard``: the engine's one hook for deciding, node by node, whether a node runs.

The engine asks a run's guard before each node executes (a node served from cache or
skipped on a branch not taken does not execute, so it is not asked). A guard answers
``None`` (go ahead) or the exception that refuses the node; the engine then records
the node as failed with that exception and stops the run, whatever depends on the
node: a refused node never feeds anything downstream. The guard also says what the
run's watchers may see of the steps a node reports (``report_step``): a step's detail is
the node's data, so a caller who may not read the node's output does not get it there
either. ``AccessControlledRuntime`` plugs its policy checks in here; ``LocalRuntime``
runs without a guard.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["NodeGuard"]


class NodeGuard(Protocol):
    """What the engine calls for every node about to execute."""

    def check_node(self, node_id: str) -> BaseException | None:
        """``None`` when ``node_id`` may execute, else the exception refusing it.

        Called on the engine's threads; it must not raise (return the refusal).
        """

    def step_detail(self, node_id: str, detail: dict[str, Any]) -> dict[str, Any]:
        """What the run's watchers may see of the ``detail`` of a step ``node_id``
        reported (already JSON-safe and scrubbed of secrets): ``detail`` itself or less.

        Called on the thread the node reports from; it must not raise.
        """
