"""A small custom node shared by the Kailash builder tests."""

from __future__ import annotations

from typing import Any

from kailash_nb import Node, NodeParameter


class Double(Node):
    """Doubles ``x`` (default 1)."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {"x": NodeParameter(name="x", type=int, required=False, default=1)}

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return {"result": kwargs["x"] * 2}
