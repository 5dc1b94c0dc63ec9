"""A static SVG picture of a workflow graph.

The notebook widget draws the same picture live in the browser (``widget.js``);
this module renders it once, as text, for the ``image/svg+xml`` output that saved
notebooks, nbviewer and GitHub show. The output is deterministic (same graph,
same bytes) and every piece of text in it is XML-escaped::

    svg = render_svg(
        "etl",
        [{"id": "load", "type": "CSVReaderNode", "state": "completed", "x": 24, "y": 24}],
        [],
        width=208,
        height=96,
    )

Each node is a ``<g class="kn-node" data-node="<id>" data-state="<state>">``; each
edge a ``<g class="kn-edge" data-source="<id>" data-target="<id>">``. Below the graph, a
legend (``<g class="kn-legend">``, one ``<g class="kn-legend-item" data-state="<state>">``
per state in ``STATE_COLORS`` order) names the colours, as the widget's legend does; it
adds rows under the canvas, so the picture is taller than the canvas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple, TypedDict

from kailash_nb.notebook.layout import NODE_HEIGHT, NODE_WIDTH, layered_layout

__all__ = [
    "BACKGROUND_COLOR",
    "EDGE_COLOR",
    "STATE_COLORS",
    "TEXT_COLOR",
    "GraphEdge",
    "GraphNode",
    "GraphPicture",
    "edge_path",
    "lay_out",
    "render_svg",
    "shorten",
]

#: Fill and stroke of a node box per state; ``widget.js`` holds the same table.
STATE_COLORS: dict[str, tuple[str, str]] = {
    "idle": ("#f1f5f9", "#94a3b8"),
    "stale": ("#fef3c7", "#d97706"),
    "queued": ("#e0e7ff", "#6366f1"),
    "running": ("#bfdbfe", "#2563eb"),
    "completed": ("#bbf7d0", "#16a34a"),
    "cached": ("#ccfbf1", "#0d9488"),
    "failed": ("#fecaca", "#dc2626"),
    "skipped": ("#e5e7eb", "#9ca3af"),
}
#: Colour of node text.
TEXT_COLOR = "#0f172a"
#: Colour of edges, arrowheads and edge labels.
EDGE_COLOR = "#64748b"
#: Canvas colour, also the halo behind edge labels (legible on dark pages too).
BACKGROUND_COLOR = "#ffffff"

# How far below the rows a back edge (or any edge pointing left) loops.
_LOOP_DEPTH = 56
# Characters of a node id or type that fit in a node box, and of an edge label that
# fit between two layers.
_MAX_LABEL = 22
_MAX_EDGE_LABEL = 18
# Legend rows: height of a row, swatch size, gap after an item, and an estimate of
# the width of one character of a label at the legend's font size.
_LEGEND_ROW = 20
_LEGEND_SWATCH = 12
_LEGEND_GAP = 14
_LEGEND_CHAR = 6.5
# XML 1.0 forbids these characters even when escaped.
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class GraphNode(TypedDict):
    """One node as drawn: ``x``/``y`` are the top-left corner of its box."""

    id: str
    type: str
    state: str
    x: int
    y: int


class GraphEdge(TypedDict):
    """One drawn edge: every connection between ``source`` and ``target``.

    ``label`` lists the connections (``"result -> x"``, comma-separated);
    ``back`` is true for an edge that closes a cycle (drawn dashed).
    """

    source: str
    target: str
    label: str
    back: bool


class GraphPicture(NamedTuple):
    """A workflow graph laid out for drawing (``render_svg``'s arguments after the name).

    Attributes:
        nodes: the nodes with their positions, in insertion order.
        edges: one edge per connected pair of nodes.
        width: canvas width in pixels.
        height: canvas height in pixels.
        connections: how many connections the edges stand for.
    """

    nodes: list[GraphNode]
    edges: list[GraphEdge]
    width: int
    height: int
    connections: int


def lay_out(
    node_ids: Sequence[str],
    types: Mapping[str, str],
    states: Mapping[str, str],
    connections: Iterable[tuple[str, str, str]],
) -> GraphPicture:
    """Place ``node_ids`` with ``layered_layout`` and merge ``(source, target, label)``
    connections into one edge per pair; connections naming unknown nodes are left out.
    The widget and the lab sidebar's static graph draw this same picture."""
    known = set(node_ids)
    kept = [(s, t, label) for s, t, label in connections if s in known and t in known]
    layout = layered_layout(node_ids, [(s, t) for s, t, _ in kept])
    nodes: list[GraphNode] = []
    for node_id in node_ids:
        x, y = layout.positions[node_id]
        nodes.append(
            {"id": node_id, "type": str(types[node_id]), "state": states[node_id], "x": x, "y": y}
        )
    labels: dict[tuple[str, str], list[str]] = {}
    for source, target, label in kept:
        labels.setdefault((source, target), []).append(str(label))
    edges: list[GraphEdge] = [
        {
            "source": source,
            "target": target,
            "label": ", ".join(text for text in texts if text),
            "back": (source, target) in layout.back_edges,
        }
        for (source, target), texts in labels.items()
    ]
    return GraphPicture(nodes, edges, layout.width, layout.height, len(kept))


def render_svg(
    name: str,
    nodes: Sequence[GraphNode],
    edges: Sequence[GraphEdge],
    width: int,
    height: int,
    *,
    edge_labels: bool = True,
) -> str:
    """The graph as a standalone SVG document.

    Args:
        name: workflow name, used as the picture's title.
        nodes: the nodes, drawn in this order.
        edges: the edges; those naming unknown nodes are left out.
        width: canvas width in pixels.
        height: canvas height in pixels.
        edge_labels: write each edge's label next to it.

    Raises:
        ValueError: a node has a state outside ``STATE_COLORS``.
    """
    by_id = {node["id"]: node for node in nodes}
    legend, legend_height = _legend(width, height) if nodes else ("", 0)
    total = height + legend_height
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="kn-graph" width="{width}" '
        f'height="{total}" viewBox="0 0 {width} {total}" '
        'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="12">',
        f"<title>{_escape(f'Workflow {name}')}</title>",
        '<defs><marker id="kn-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{EDGE_COLOR}"/></marker></defs>',
        f'<rect class="kn-background" width="{width}" height="{total}" fill="{BACKGROUND_COLOR}"/>',
        '<g class="kn-edges">',
    ]
    for edge in edges:
        source, target = by_id.get(edge["source"]), by_id.get(edge["target"])
        if source is not None and target is not None:
            parts.append(_edge(edge, source, target, edge_labels))
    parts.append('</g><g class="kn-nodes">')
    parts.extend(_node(node) for node in nodes)
    parts.append("</g>")
    if legend:
        parts.append(legend)
    parts.append("</svg>")
    return "\n".join(parts)


def edge_path(source: GraphNode, target: GraphNode) -> tuple[str, tuple[float, float]]:
    """SVG path data from ``source``'s right side to ``target``'s left side, and the
    point where the edge's label goes.

    Edges pointing right are S-curves; edges pointing left (back edges, self-loops)
    loop below the two boxes.
    """
    x1, y1 = source["x"] + NODE_WIDTH, source["y"] + NODE_HEIGHT // 2
    x2, y2 = target["x"], target["y"] + NODE_HEIGHT // 2
    if x2 > x1:
        bend = max(40, (x2 - x1) // 2)
        path = f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"
        return path, ((x1 + x2) / 2, (y1 + y2) / 2 - 6)
    c1y, c2y = y1 + _LOOP_DEPTH, y2 + _LOOP_DEPTH
    path = f"M{x1},{y1} C{x1 + 60},{c1y} {x2 - 60},{c2y} {x2},{y2}"
    return path, ((x1 + x2) / 2, (y1 + y2) / 2 + _LOOP_DEPTH * 0.75 + 12)


def shorten(text: str, limit: int = _MAX_LABEL) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _edge(edge: GraphEdge, source: GraphNode, target: GraphNode, with_label: bool) -> str:
    path, (label_x, label_y) = edge_path(source, target)
    dash = ' stroke-dasharray="5 4"' if edge["back"] else ""
    parts = [
        f'<g class="kn-edge" data-source="{_escape(edge["source"])}" '
        f'data-target="{_escape(edge["target"])}" data-back="{str(edge["back"]).lower()}">',
        f"<title>{_escape(edge['label'])}</title>",
        f'<path d="{path}" fill="none" stroke="{EDGE_COLOR}" stroke-width="1.5"{dash} '
        'marker-end="url(#kn-arrow)"/>',
    ]
    if with_label and edge["label"]:
        parts.append(
            f'<text class="kn-edge-label" x="{label_x:g}" y="{label_y:g}" '
            f'text-anchor="middle" font-size="10" fill="{EDGE_COLOR}" '
            f'stroke="{BACKGROUND_COLOR}" stroke-width="3" stroke-linejoin="round" '
            f'paint-order="stroke">{_escape(shorten(edge["label"], _MAX_EDGE_LABEL))}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _legend(width: int, top: int) -> tuple[str, int]:
    """The legend's rows starting at ``top``, wrapped to ``width``, and their height."""
    items, x, row = [], 8.0, 0
    for state, (fill, stroke) in STATE_COLORS.items():
        item_width = _LEGEND_SWATCH + 4 + len(state) * _LEGEND_CHAR
        if x > 8 and x + item_width > width - 8:
            x, row = 8.0, row + 1
        y = top + 4 + row * _LEGEND_ROW
        items.append(
            f'<g class="kn-legend-item" data-state="{state}" transform="translate({x:g},{y})">'
            f'<rect width="{_LEGEND_SWATCH}" height="{_LEGEND_SWATCH}" rx="3" ry="3" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
            f'<text x="{_LEGEND_SWATCH + 4}" y="10" font-size="11" fill="{TEXT_COLOR}">'
            f"{state}</text></g>"
        )
        x += item_width + _LEGEND_GAP
    return '<g class="kn-legend">' + "".join(items) + "</g>", (row + 1) * _LEGEND_ROW + 4


def _node(node: GraphNode) -> str:
    state = node["state"]
    if state not in STATE_COLORS:
        raise ValueError(
            f"node {node['id']!r} has state {state!r}; use one of {', '.join(STATE_COLORS)}"
        )
    fill, stroke = STATE_COLORS[state]
    node_id, node_type = _escape(node["id"]), _escape(node["type"])
    center = NODE_WIDTH // 2
    return (
        f'<g class="kn-node" data-node="{node_id}" data-state="{state}" '
        f'transform="translate({node["x"]},{node["y"]})">'
        f"<title>{node_id} ({node_type}): {state}</title>"
        f'<rect width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="8" ry="8" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="1.5"/>'
        f'<text class="kn-node-id" x="{center}" y="20" text-anchor="middle" '
        f'font-weight="600" fill="{TEXT_COLOR}">{_escape(shorten(node["id"]))}</text>'
        f'<text class="kn-node-type" x="{center}" y="36" text-anchor="middle" '
        f'font-size="11" fill="{TEXT_COLOR}" fill-opacity="0.7">'
        f"{_escape(shorten(node['type']))}</text>"
        "</g>"
    )


def _escape(text: str) -> str:
    """``text`` safe inside XML character data and double- or single-quoted attributes."""
    text = _INVALID_XML.sub("\ufffd", str(text))
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )
