"""A stable layered layout for workflow graphs.

Nodes are placed in columns (layers) from left to right: a node's layer is the
length of the longest path reaching it from a root, and within a layer nodes keep
the order they were added in. Spacing is fixed, so the layout of a growing
workflow is stable: adding a node moves no other node unless it changes that
node's layer. Edges that would close a cycle (a loop's back edge) are drawn but
ignored for layering::

    layout = layered_layout(["load", "clean", "save"], [("load", "clean"), ("clean", "save")])
    layout.positions["clean"]  # (284, 24): second column, first row
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import networkx as nx

__all__ = [
    "BACK_EDGE_ROOM",
    "LAYER_SPACING",
    "MARGIN",
    "NODE_HEIGHT",
    "NODE_WIDTH",
    "ROW_SPACING",
    "Layout",
    "layered_layout",
]

#: Width of a node box, in pixels.
NODE_WIDTH = 160
#: Height of a node box, in pixels.
NODE_HEIGHT = 48
#: Horizontal distance between the left edges of two neighbouring layers.
LAYER_SPACING = 260
#: Vertical distance between the top edges of two neighbouring rows.
ROW_SPACING = 80
#: Empty space around the drawing.
MARGIN = 24
#: Extra space below the last row, where back edges loop around.
BACK_EDGE_ROOM = 40


@dataclass(frozen=True)
class Layout:
    """Where each node goes.

    Attributes:
        positions: node id -> ``(x, y)`` of the top-left corner of its box.
        layers: node id -> layer (column) index, 0 for roots.
        back_edges: the ``(source, target)`` pairs ignored for layering because
            they close a cycle (self-loops included).
        width: canvas width needed to show every node.
        height: canvas height needed to show every node and back edge.
    """

    positions: dict[str, tuple[int, int]]
    layers: dict[str, int]
    back_edges: frozenset[tuple[str, str]]
    width: int
    height: int


def layered_layout(node_ids: Sequence[str], edges: Iterable[tuple[str, str]]) -> Layout:
    """Lay out ``node_ids`` (in insertion order) connected by ``(source, target)`` edges.

    The layout replays the workflow's growth: nodes arrive in insertion order, each
    edge arrives with the later of its two nodes. An arriving node takes the first
    free row of its layer; a node whose layer grows (an arriving node feeds it) moves
    to the first free row of its new layer; every other node keeps its place. When
    edges only point from earlier to later nodes, as in a workflow built cell by
    cell, rows are simply insertion order. An edge that would close a cycle among the
    nodes arrived so far (a loop's back edge, a self-loop) is ignored for layering.
    Edges naming unknown nodes are ignored.
    """
    order = {node_id: index for index, node_id in enumerate(node_ids)}
    arriving: dict[str, list[tuple[str, str]]] = {node_id: [] for node_id in node_ids}
    for source, target in edges:
        if source in order and target in order:
            later = source if order[source] >= order[target] else target
            arriving[later].append((source, target))

    graph = nx.DiGraph()
    layers: dict[str, int] = {}
    rows: dict[str, int] = {}
    placed_in: dict[str, int] = {}
    taken: dict[int, set[int]] = {}
    back_edges: set[tuple[str, str]] = set()
    for node_id in node_ids:
        graph.add_node(node_id)
        incoming = [s for s, t in arriving[node_id] if t == node_id and s != node_id]
        graph.add_edges_from((source, node_id) for source in incoming)
        layers[node_id] = max((layers[source] + 1 for source in incoming), default=0)
        moved: set[str] = set()
        for source, target in arriving[node_id]:
            if source != node_id:
                continue
            if target == node_id or nx.has_path(graph, target, node_id):
                back_edges.add((source, target))
                continue
            graph.add_edge(source, target)
            moved |= _raise_layers(graph, layers, target, layers[node_id] + 1)
        moved_in_order = sorted(moved, key=order.__getitem__)
        for moved_id in moved_in_order:
            taken[placed_in[moved_id]].discard(rows[moved_id])
        for placed_id in [*moved_in_order, node_id]:
            occupied = taken.setdefault(layers[placed_id], set())
            row = next(row for row in range(len(occupied) + 1) if row not in occupied)
            occupied.add(row)
            rows[placed_id], placed_in[placed_id] = row, layers[placed_id]

    columns = max(layers.values(), default=0) + 1
    deepest = max(rows.values(), default=0) + 1
    width = 2 * MARGIN + (columns - 1) * LAYER_SPACING + NODE_WIDTH
    height = 2 * MARGIN + (deepest - 1) * ROW_SPACING + NODE_HEIGHT
    if back_edges:
        height += BACK_EDGE_ROOM
    return Layout(
        positions={
            node_id: (
                MARGIN + layers[node_id] * LAYER_SPACING,
                MARGIN + rows[node_id] * ROW_SPACING,
            )
            for node_id in node_ids
        },
        layers=layers,
        back_edges=frozenset(back_edges),
        width=width,
        height=height,
    )


def _raise_layers(graph: nx.DiGraph, layers: dict[str, int], start: str, layer: int) -> set[str]:
    """Push ``start`` to at least ``layer`` and its descendants after it; returns the
    nodes whose layer grew."""
    grown: set[str] = set()
    stack = [(start, layer)]
    while stack:
        node_id, candidate = stack.pop()
        if candidate <= layers[node_id]:
            continue
        layers[node_id] = candidate
        grown.add(node_id)
        stack.extend((successor, candidate + 1) for successor in graph.successors(node_id))
    return grown
