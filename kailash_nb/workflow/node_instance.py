"""``NodeInstance``: Kailash's record describing one node of a workflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["NodeInstance"]


@dataclass
class NodeInstance:
    """One node as a definition describes it: id, registered type name, config and
    the position an editor draws it at.

    kailash_nb's ``Workflow.nodes`` maps ids to the node objects themselves; this
    record is for code that passes node descriptions around as Kailash's does.
    """

    node_id: str
    node_type: str
    config: dict[str, Any] = field(default_factory=dict)
    position: tuple[float, float] = (0, 0)
