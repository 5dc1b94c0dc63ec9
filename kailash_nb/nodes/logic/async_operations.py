"""``AsyncSwitchNode`` and ``AsyncMergeNode`` at Kailash's module path.

They route and merge exactly as ``SwitchNode`` and ``MergeNode`` do, as ``AsyncNode``
subclasses (the engine awaits them on its event loop). ``AsyncSwitchNode`` is a
branching node like ``SwitchNode``: the nodes of the branch it did not take are
skipped.
"""

from __future__ import annotations

from typing import Any

from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.nodes.logic.operations import MergeNode, SwitchNode
from kailash_nb.nodes.node import NodeParameter
from kailash_nb.nodes.registry import register_node

__all__ = ["AsyncMergeNode", "AsyncSwitchNode"]


@register_node()
class AsyncSwitchNode(AsyncNode, SwitchNode):
    """``SwitchNode`` as an async node: same parameters, outputs and branch skipping."""

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        """Route ``input_data`` as ``SwitchNode.run`` does."""
        return SwitchNode.run(self, **kwargs)


@register_node()
class AsyncMergeNode(AsyncNode, MergeNode):
    """``MergeNode`` as an async node: same parameters and outputs, plus Kailash's
    ``chunk_size``, accepted and unused (Kailash processes large inputs in chunks of
    that size with the same result; kailash_nb merges them at once)."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        """``MergeNode``'s parameters and ``chunk_size``."""
        return {
            **super().get_parameters(),
            "chunk_size": NodeParameter(
                name="chunk_size",
                type=int,
                required=False,
                default=1000,
                description="accepted for Kailash code; kailash_nb merges in one pass",
            ),
        }

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        """Merge the inputs as ``MergeNode.run`` does."""
        kwargs.pop("chunk_size", None)
        return MergeNode.run(self, **kwargs)
