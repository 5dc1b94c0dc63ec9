"""The notebook graph: layered layout, static SVG, and the live ``GraphWidget``."""

from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from IPython.core.formatters import DisplayFormatter

from kailash_nb.notebook import layout as layout_module
from kailash_nb.notebook import svg as svg_module
from kailash_nb.notebook.layout import (
    BACK_EDGE_ROOM,
    LAYER_SPACING,
    MARGIN,
    NODE_HEIGHT,
    NODE_WIDTH,
    ROW_SPACING,
    layered_layout,
)
from kailash_nb.notebook.svg import STATE_COLORS, render_svg
from kailash_nb.notebook.view import NODE_STATES, NodeInfo
from kailash_nb.notebook.widget import ENGINE_STATES, GraphWidget
from kailash_nb.runtime.events import EventBus, NodeEvent
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.workflow.builder import WorkflowBuilder

WIDGET_JS = Path(layout_module.__file__).with_name("widget.js")
SECRET = "sk-live-9f8e7d6c5b4a"
_SECRET_NAME = re.compile(r"(key|secret|token|password)", re.IGNORECASE)


class NotebookView:
    """A small ``WorkflowView`` over a ``WorkflowBuilder``, as the notebook session offers.

    States, durations, errors and outputs are whatever the test sets: the widget must
    follow runs through the event bus, not through the view. Parameters with secret
    names are masked, as the session masks them.
    """

    def __init__(self, name: str = "demo") -> None:
        self.name = name
        self.builder = WorkflowBuilder()
        self._events = EventBus()
        self._order: list[str] = []
        self._types: dict[str, str] = {}
        self._configs: dict[str, dict[str, Any]] = {}
        self._edges: list[tuple[str, str, str]] = []
        self._listeners: list[Callable[[], Any]] = []
        self.states: dict[str, str] = {}
        self.durations: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.tracebacks: dict[str, str] = {}
        self.outputs: dict[str, str] = {}
        self.extra_info: dict[str, Any] = {}

    @property
    def events(self) -> EventBus:
        return self._events

    def add(self, node_id: str, code: str = "result = 1", **config: Any) -> NotebookView:
        node_type = config.pop("node_type", "PythonCodeNode")
        if node_type == "PythonCodeNode":
            config["code"] = code
        self.builder.add_node(node_type, node_id, dict(config))
        self._order.append(node_id)
        self._types[node_id] = node_type
        self._configs[node_id] = dict(config)
        self.states[node_id] = "idle"
        self._changed()
        return self

    def connect(self, source: str, output: str, target: str, input_: str) -> NotebookView:
        self.builder.add_connection(source, output, target, input_)
        self._edges.append((source, target, f"{output} -> {input_}"))
        self._changed()
        return self

    def mark(self, node_id: str, state: str) -> None:
        self.states[node_id] = state
        self._changed()

    def run(self, **runtime_options: Any) -> dict[str, Any]:
        workflow = self.builder.build(name=self.name)
        cached = runtime_options.pop("cached_outputs", None)
        runtime = LocalRuntime(event_bus=self.events, **runtime_options)
        results, _ = runtime.execute(workflow, cached_outputs=cached)
        return results

    # -- the protocol --------------------------------------------------------------------
    def node_ids(self) -> list[str]:
        return list(self._order)

    def edges(self) -> list[tuple[str, str, str]]:
        return list(self._edges)

    def node_info(self, node_id: str) -> NodeInfo:
        parameters = {
            name: "********" if _SECRET_NAME.search(name) else repr(value)[:40]
            for name, value in self._configs[node_id].items()
        }
        info: dict[str, Any] = {
            "id": node_id,
            "type": self._types[node_id],
            "state": self.states[node_id],
            "parameters": parameters,
            "duration": self.durations.get(node_id),
            "error": self.errors.get(node_id),
            "output_preview": self.outputs.get(node_id),
            "cell": "In [3]",
            "traceback": self.tracebacks.get(node_id),
            **self.extra_info,
        }
        return info  # type: ignore[return-value]

    def run_status(self) -> str:
        return ""

    def add_listener(self, callback: Callable[[], Any]) -> Callable[[], None]:
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()


@pytest.fixture
def make_widget() -> Iterator[Callable[..., GraphWidget]]:
    """Build widgets and close them at the end of the test (no timer threads left)."""
    widgets: list[GraphWidget] = []

    def make(view: NotebookView, **options: Any) -> GraphWidget:
        widget = GraphWidget(view, **options)
        widgets.append(widget)
        return widget

    yield make
    for widget in widgets:
        widget.close()


def _chain_view() -> NotebookView:
    view = NotebookView("chain")
    view.add("a").add("b", "result = x + 1").add("c", "result = y * 2")
    view.connect("a", "result", "b", "x").connect("b", "result", "c", "y")
    return view


def _states(widget: GraphWidget) -> dict[str, str]:
    return {node["id"]: node["state"] for node in widget.nodes}


def _count_changes(widget: GraphWidget, name: str) -> list[Any]:
    changes: list[Any] = []
    widget.observe(changes.append, names=[name])
    return changes


def _event(node_id: str, state: str) -> NodeEvent:
    return NodeEvent("run-1", node_id, state, 0.0)  # type: ignore[arg-type]


# -- layout ------------------------------------------------------------------------------


def test_chain_is_one_layer_per_step() -> None:
    layout = layered_layout(["a", "b", "c"], [("a", "b"), ("b", "c")])
    assert layout.layers == {"a": 0, "b": 1, "c": 2}
    assert layout.positions == {
        "a": (MARGIN, MARGIN),
        "b": (MARGIN + LAYER_SPACING, MARGIN),
        "c": (MARGIN + 2 * LAYER_SPACING, MARGIN),
    }
    assert layout.width == 2 * MARGIN + 2 * LAYER_SPACING + NODE_WIDTH
    assert layout.height == 2 * MARGIN + NODE_HEIGHT
    assert layout.back_edges == frozenset()


def test_layer_is_the_longest_path_and_rows_follow_insertion_order() -> None:
    edges = [("a", "b"), ("a", "d"), ("b", "c"), ("c", "d"), ("r", "c")]
    layout = layered_layout(["a", "r", "b", "c", "d"], edges)
    assert layout.layers == {"a": 0, "r": 0, "b": 1, "c": 2, "d": 3}
    assert layout.positions["a"] == (MARGIN, MARGIN)
    assert layout.positions["r"] == (MARGIN, MARGIN + ROW_SPACING)
    assert layout.height == 2 * MARGIN + ROW_SPACING + NODE_HEIGHT


def test_edge_against_insertion_order_without_cycle_is_kept() -> None:
    layout = layered_layout(["save", "load"], [("load", "save")])
    assert layout.layers == {"load": 0, "save": 1}
    assert layout.back_edges == frozenset()


def test_cycle_edges_are_ignored_for_layering() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("b", "b")]
    layout = layered_layout(["a", "b", "c"], edges)
    assert layout.layers == {"a": 0, "b": 1, "c": 2}
    assert layout.back_edges == frozenset({("c", "a"), ("b", "b")})
    assert layout.height == 2 * MARGIN + NODE_HEIGHT + BACK_EDGE_ROOM


def test_edges_to_unknown_nodes_and_empty_graphs() -> None:
    layout = layered_layout(["a"], [("a", "ghost"), ("ghost", "a")])
    assert layout.layers == {"a": 0}
    empty = layered_layout([], [])
    assert empty.positions == {}
    assert empty.width > 0 and empty.height > 0


def test_adding_nodes_fed_by_existing_ones_moves_nothing() -> None:
    rng = random.Random(7)
    node_ids: list[str] = []
    edges: list[tuple[str, str]] = []
    previous = layered_layout(node_ids, edges)
    for index in range(40):
        new = f"n{index}"
        for source in rng.sample(node_ids, k=min(len(node_ids), rng.randint(0, 2))):
            edges.append((source, new))
        node_ids.append(new)
        current = layered_layout(node_ids, edges)
        for node_id, position in previous.positions.items():
            assert current.positions[node_id] == position, (new, node_id)
        previous = current
    # Rows are insertion order within each layer, without gaps.
    for layer in set(previous.layers.values()):
        members = [n for n in node_ids if previous.layers[n] == layer]
        assert [previous.positions[n][1] for n in members] == [
            MARGIN + row * ROW_SPACING for row in range(len(members))
        ]


def test_a_new_node_moves_only_nodes_whose_layer_it_changes() -> None:
    before = layered_layout(["a", "b", "c"], [("a", "b")])
    # A new root feeding "b" leaves every layer as it was.
    same = layered_layout(["a", "b", "c", "z"], [("a", "b"), ("z", "b")])
    assert {n: same.positions[n] for n in "abc"} == before.positions
    assert same.positions["z"] == (MARGIN, MARGIN + 2 * ROW_SPACING)
    # A new node in front of "a" pushes "a" and "b" one layer right and takes the row
    # "a" left; "c" keeps its place.
    pushed = layered_layout(["a", "b", "c", "pre"], [("a", "b"), ("pre", "a")])
    assert pushed.layers == {"a": 1, "b": 2, "c": 0, "pre": 0}
    assert pushed.positions["c"] == before.positions["c"]
    assert pushed.positions["pre"] == before.positions["a"]
    assert pushed.positions["a"] == before.positions["b"]


def test_layout_properties_on_random_graphs_with_cycles() -> None:
    rng = random.Random(11)
    for _ in range(30):
        count = rng.randint(1, 14)
        node_ids = [f"n{i}" for i in range(count)]
        edges = [
            (rng.choice(node_ids), rng.choice(node_ids)) for _ in range(rng.randint(0, 2 * count))
        ]
        previous = layered_layout([], [])
        for size in range(1, count + 1):
            prefix = node_ids[:size]
            current = layered_layout(prefix, edges)
            # Layers are longest paths over the edges that close no cycle.
            kept = nx.DiGraph()
            kept.add_nodes_from(prefix)
            kept.add_edges_from(
                e for e in edges if set(e) <= set(prefix) and e not in current.back_edges
            )
            assert nx.is_directed_acyclic_graph(kept)
            for node_id in nx.topological_sort(kept):
                expected = max(
                    (current.layers[p] + 1 for p in kept.predecessors(node_id)), default=0
                )
                assert current.layers[node_id] == expected
            # No two nodes overlap; a node moves only when its layer changes.
            assert len(set(current.positions.values())) == size
            for node_id, position in previous.positions.items():
                if current.layers[node_id] == previous.layers[node_id]:
                    assert current.positions[node_id] == position
            bottom = max(y for _, y in current.positions.values()) + NODE_HEIGHT + MARGIN
            assert current.height >= bottom
            previous = current


# -- SVG -----------------------------------------------------------------------------


def _graph(states: dict[str, str]) -> tuple[list[Any], list[Any]]:
    ids = list(states)
    layout = layered_layout(ids, list(itertools.pairwise(ids)))
    nodes = [
        {"id": i, "type": "PythonCodeNode", "state": s, "x": layout.positions[i][0], "y": 0}
        for i, s in states.items()
    ]
    edges = [
        {"source": a, "target": b, "label": "result -> x", "back": False}
        for a, b in itertools.pairwise(ids)
    ]
    return nodes, edges


def test_svg_has_one_group_per_node_with_state_and_color() -> None:
    nodes, edges = _graph({f"n_{state}": state for state in NODE_STATES})
    svg = render_svg("all states", nodes, edges, 2000, 200)
    root = ET.fromstring(svg)
    groups = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "kn-node"]
    assert [g.get("data-node") for g in groups] == [node["id"] for node in nodes]
    for group in groups:
        state = group.get("data-state")
        rect = group.find("{http://www.w3.org/2000/svg}rect")
        assert rect is not None
        assert (rect.get("fill"), rect.get("stroke")) == STATE_COLORS[state]  # type: ignore[index]
    assert set(STATE_COLORS) == set(NODE_STATES)
    assert len([g for g in root.iter() if g.get("class") == "kn-edge"]) == len(edges)


def _legend_items(svg: str) -> list[Any]:
    root = ET.fromstring(svg)
    return [g for g in root.iter() if g.get("class") == "kn-legend-item"]


@pytest.mark.parametrize("width", [208, 400, 2000])
def test_svg_legend_names_every_state_colour_within_the_canvas_width(width: int) -> None:
    nodes, edges = _graph({"a": "completed", "b": "failed"})
    svg = render_svg("wf", nodes, edges, width, 96)
    items = _legend_items(svg)
    assert [item.get("data-state") for item in items] == list(STATE_COLORS)
    for item in items:
        rect = item.find("{http://www.w3.org/2000/svg}rect")
        text = item.find("{http://www.w3.org/2000/svg}text")
        assert (rect.get("fill"), rect.get("stroke")) == STATE_COLORS[item.get("data-state")]
        assert text.text == item.get("data-state")
        x, y = map(float, re.findall(r"[\d.]+", item.get("transform")))
        assert y >= 96  # below the canvas: never over a node
        assert x + 16 + len(text.text) * svg_module._LEGEND_CHAR <= width
    root = ET.fromstring(svg)
    rows = {item.get("transform").split(",")[1] for item in items}
    assert int(root.get("height")) == 96 + len(rows) * svg_module._LEGEND_ROW + 4


def test_svg_of_an_empty_graph_has_no_legend() -> None:
    svg = render_svg("wf", [], [], 200, 60)
    assert _legend_items(svg) == []
    assert ET.fromstring(svg).get("height") == "60"


def test_svg_is_deterministic() -> None:
    nodes, edges = _graph({"a": "completed", "b": "running", "c": "idle"})
    first = render_svg("wf", nodes, edges, 800, 120)
    assert first == render_svg("wf", [dict(n) for n in nodes], [dict(e) for e in edges], 800, 120)  # type: ignore[misc]
    assert "0x" not in first


def test_svg_escapes_all_text() -> None:
    tricky = "a<b>&\"c'\x01"
    nodes = [
        {"id": tricky, "type": "<script>alert(1)</script>", "state": "failed", "x": 0, "y": 0},
        {"id": "next", "type": "T", "state": "idle", "x": 240, "y": 0},
    ]
    edges = [{"source": tricky, "target": "next", "label": "<out> -> &in", "back": False}]
    svg = render_svg("<wf & co>", nodes, edges, 500, 100)  # type: ignore[arg-type]
    assert "<script>" not in svg
    assert "<wf" not in svg
    assert 'data-node="a&lt;b&gt;&amp;&quot;c&#39;\ufffd"' in svg
    root = ET.fromstring(svg)  # well-formed
    node = next(g for g in root.iter() if g.get("class") == "kn-node")
    assert node.get("data-node") == "a<b>&\"c'\ufffd"
    label = next(t for t in root.iter() if t.get("class") == "kn-edge-label")
    assert label.text == "<out> -> &in"


def test_svg_edge_labels_are_optional_and_back_edges_dashed() -> None:
    nodes, _ = _graph({"a": "idle", "b": "idle"})
    edges = [
        {"source": "a", "target": "b", "label": "result -> x", "back": False},
        {"source": "b", "target": "a", "label": "result -> y", "back": True},
    ]
    with_labels = render_svg("wf", nodes, edges, 500, 160)
    without = render_svg("wf", nodes, edges, 500, 160, edge_labels=False)
    assert with_labels.count("kn-edge-label") == 2
    assert "kn-edge-label" not in without
    assert with_labels.count("stroke-dasharray") == 1
    assert 'data-back="true"' in with_labels


def test_svg_shortens_long_ids_but_keeps_them_in_attributes() -> None:
    long_id = "load_the_quarterly_orders_from_the_warehouse"
    nodes = [{"id": long_id, "type": "CSVReaderNode", "state": "idle", "x": 0, "y": 0}]
    svg = render_svg("wf", nodes, [], 200, 100)  # type: ignore[arg-type]
    assert f'data-node="{long_id}"' in svg
    assert f">{long_id[:21]}…<" in svg


def test_svg_rejects_unknown_states() -> None:
    nodes = [{"id": "a", "type": "T", "state": "exploded", "x": 0, "y": 0}]
    with pytest.raises(ValueError, match="'a' has state 'exploded'"):
        render_svg("wf", nodes, [], 200, 100)  # type: ignore[arg-type]


def test_widget_js_matches_the_python_drawing() -> None:
    js = WIDGET_JS.read_text(encoding="utf-8")
    table = js[js.index("const STATE_COLORS = {") : js.index("};", js.index("STATE_COLORS"))]
    colors = {
        state: (fill, stroke)
        for state, fill, stroke in re.findall(r'(\w+): \["(#\w+)", "(#\w+)"\]', table)
    }
    assert colors == STATE_COLORS
    # The legend lists the table's states in order: every state the view knows.
    assert tuple(colors) == tuple(STATE_COLORS) == NODE_STATES
    assert f"const NODE_WIDTH = {NODE_WIDTH};" in js
    assert f"const NODE_HEIGHT = {NODE_HEIGHT};" in js
    for name in ("TEXT_COLOR", "EDGE_COLOR", "BACKGROUND_COLOR"):
        assert f'const {name} = "{getattr(svg_module, name)}";' in js
    assert f"const LOOP_DEPTH = {svg_module._LOOP_DEPTH};" in js
    assert f"const MAX_EDGE_LABEL = {svg_module._MAX_EDGE_LABEL};" in js
    assert "data-node" in js and "data-state" in js
    # Plain ESM, no imports, no CDN: the only URL is the SVG namespace.
    assert re.search(r"^\s*import\b|\bimport\(", js, re.MULTILINE) is None
    assert re.findall(r"https?://[^\s\"'`]+", js) == ["http://www.w3.org/2000/svg"]
    assert "innerHTML" not in js


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_widget_js_is_valid_esm() -> None:
    """``widget.js`` parses as an ES module (the browser tests also run it)."""
    checked = subprocess.run(
        ["node", "--input-type=module", "--check"],
        input=WIDGET_JS.read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


# -- the widget -----------------------------------------------------------------------


def test_traits_after_construction(make_widget: Callable[..., GraphWidget]) -> None:
    view = _chain_view()
    widget = make_widget(view)
    layout = layered_layout(["a", "b", "c"], [("a", "b"), ("b", "c")])
    assert widget.workflow_name == "chain"
    assert widget.nodes == [
        {"id": n, "type": "PythonCodeNode", "state": "idle", "x": x, "y": y}
        for n, (x, y) in layout.positions.items()
    ]
    assert widget.edges == [
        {"source": "a", "target": "b", "label": "result -> x", "back": False},
        {"source": "b", "target": "c", "label": "result -> y", "back": False},
    ]
    assert widget.size == {"width": layout.width, "height": layout.height}
    assert widget.details == {}
    assert widget.edge_labels is True
    assert widget._esm == WIDGET_JS.read_text(encoding="utf-8")
    state = widget.get_state()
    assert {"workflow_name", "nodes", "edges", "size", "details", "edge_labels"} <= set(state)


def test_update_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="update_interval"):
        GraphWidget(_chain_view(), update_interval=0)


def test_parallel_connections_are_one_edge(make_widget: Callable[..., GraphWidget]) -> None:
    view = NotebookView("pair")
    view.add("a", "result = 1\nother = 2").add("b", "result = x + y")
    view.connect("a", "result", "b", "x").connect("a", "other", "b", "y")
    widget = make_widget(view)
    assert widget.edges == [
        {"source": "a", "target": "b", "label": "result -> x, other -> y", "back": False}
    ]
    assert repr(widget) == "<Workflow pair: 2 nodes, 2 edges>"


def test_structural_changes_are_coalesced_and_stable(
    make_widget: Callable[..., GraphWidget],
) -> None:
    view = _chain_view()
    widget = make_widget(view, update_interval=3600)
    before = {node["id"]: (node["x"], node["y"]) for node in widget.nodes}
    changes = _count_changes(widget, "nodes")
    view.add("d", "result = z").connect("c", "result", "d", "z").add("side")
    assert changes == []  # waiting for the next flush
    widget.flush()
    assert len(changes) == 1
    after = {node["id"]: (node["x"], node["y"]) for node in widget.nodes}
    assert {n: after[n] for n in before} == before
    assert after["d"] == (MARGIN + 3 * LAYER_SPACING, MARGIN)
    assert after["side"] == (MARGIN, MARGIN + ROW_SPACING)
    view.mark("a", "stale")
    widget.flush()
    assert _states(widget)["a"] == "stale"


def test_structural_changes_reach_the_browser_without_flush(
    make_widget: Callable[..., GraphWidget],
) -> None:
    view = _chain_view()
    widget = make_widget(view, update_interval=0.01)
    arrived = threading.Event()
    widget.observe(lambda change: arrived.set(), names=["nodes"])
    view.add("d")
    assert arrived.wait(10), "the update timer never sent the new node"
    assert [node["id"] for node in widget.nodes][-1] == "d"


@pytest.mark.parametrize("scheduler", ["default", "event-loop"])
def test_live_states_from_a_real_run(
    make_widget: Callable[..., GraphWidget], scheduler: str
) -> None:
    view = NotebookView("branches")
    view.add("src")
    view.add("switch", node_type="SwitchNode", value=2)
    view.add("taken", "result = d").add("untaken", "result = d").add("after", "result = e")
    view.add("boom", "raise ValueError(x)")
    view.add("expensive", "result = 21")
    view.connect("src", "result", "switch", "input_data")
    view.connect("switch", "false_output", "taken", "d")
    view.connect("switch", "true_output", "untaken", "d")
    view.connect("untaken", "result", "after", "e")
    view.connect("src", "result", "boom", "x")
    widget = make_widget(view)
    options: dict[str, Any] = {"cached_outputs": {"expensive": {"result": 50}}}
    if scheduler == "event-loop":
        options["workflow_timeout"] = 60
    view.run(**options)
    widget.flush()
    assert _states(widget) == {
        "src": "completed",
        "switch": "completed",
        "taken": "completed",
        "untaken": "skipped",
        "after": "skipped",
        "boom": "failed",
        "expensive": "cached",
    }
    assert view.states["src"] == "idle"  # the widget followed the events, not the view


def test_the_end_of_a_run_sends_the_final_state(make_widget: Callable[..., GraphWidget]) -> None:
    view = _chain_view()
    widget = make_widget(view, update_interval=3600)
    changes = _count_changes(widget, "nodes")
    view.run()
    # No flush() here: the run's end flushed, however long the update interval.
    assert _states(widget) == {"a": "completed", "b": "completed", "c": "completed"}
    assert len(changes) == 1


def test_a_run_right_after_a_change_is_followed(make_widget: Callable[..., GraphWidget]) -> None:
    view = _chain_view()
    widget = make_widget(view, update_interval=3600)
    view.add("d", "result = z").connect("c", "result", "d", "z")
    view.run()  # the structural change is still unsent when events start
    assert _states(widget)["d"] == "completed"


def test_engine_states_map_to_widget_states(make_widget: Callable[..., GraphWidget]) -> None:
    view = NotebookView("one")
    view.add("a")
    widget = make_widget(view, update_interval=3600)
    assert set(ENGINE_STATES.values()) <= set(NODE_STATES)
    for engine_state, shown in ENGINE_STATES.items():
        view.events.emit(_event("a", engine_state))
        widget.flush()
        assert _states(widget) == {"a": shown}, engine_state
    view.events.emit(_event("ghost", "started"))  # another workflow's node: ignored
    widget.flush()
    assert _states(widget) == {"a": "cached"}


def test_bursts_of_events_are_coalesced(make_widget: Callable[..., GraphWidget]) -> None:
    view = NotebookView("burst")
    for index in range(8):
        view.add(f"n{index}")
    widget = make_widget(view, update_interval=3600)
    changes = _count_changes(widget, "nodes")
    _emit_from_threads(view, threads=4, events_per_thread=250)
    assert changes == []  # nothing sent before the interval is up
    widget.flush()
    assert len(changes) == 1
    assert _states(widget) == _expected_final_states(8)


def test_updates_are_rate_limited_while_events_stream_in(
    make_widget: Callable[..., GraphWidget],
) -> None:
    interval = 0.01
    view = NotebookView("stream")
    for index in range(8):
        view.add(f"n{index}")
    widget = make_widget(view, update_interval=interval)
    changes = _count_changes(widget, "nodes")
    started = time.monotonic()
    _emit_from_threads(view, threads=4, events_per_thread=250)
    widget.flush()
    elapsed = time.monotonic() - started
    # One update at the start of the burst, at most one per interval after it, and the
    # final flush.
    assert 1 <= len(changes) <= 2 + int(elapsed / interval) + 1
    assert len(changes) < 100
    assert _states(widget) == _expected_final_states(8)


def _emit_from_threads(view: NotebookView, *, threads: int, events_per_thread: int) -> None:
    """Emit node events from several threads at once; thread ``t`` owns nodes ``n{t}``,
    ``n{t + threads}``, ... and ends each on ``completed`` (even) or ``failed`` (odd)."""
    cycle = ["queued", "started", "retrying", "started"]
    barrier = threading.Barrier(threads)

    def emit(thread_index: int) -> None:
        own = [f"n{i}" for i in range(thread_index, 8, threads)]
        barrier.wait()
        for count in range(events_per_thread - len(own)):
            view.events.emit(_event(own[count % len(own)], cycle[count % len(cycle)]))
        for node_id in own:
            ending = "completed" if int(node_id[1:]) % 2 == 0 else "failed"
            view.events.emit(_event(node_id, ending))

    workers = [threading.Thread(target=emit, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _expected_final_states(count: int) -> dict[str, str]:
    return {f"n{i}": "completed" if i % 2 == 0 else "failed" for i in range(count)}


def test_click_message_round_trip(make_widget: Callable[..., GraphWidget]) -> None:
    view = _chain_view()
    view.durations["b"] = 0.25
    view.errors["b"] = "ValueError: bad x"
    view.outputs["b"] = "{'result': 2}"
    view.tracebacks["b"] = "Cell In [3], line 2, in f\n    x = bad()\nValueError: bad x"
    widget = make_widget(view)
    # What ipywidgets does with a comm message from model.send({type, node}).
    message = {"type": "select", "node": "b"}
    widget._handle_msg(
        {"content": {"data": {"method": "custom", "content": message}}, "buffers": []}
    )
    assert widget.details == {
        "id": "b",
        "type": "PythonCodeNode",
        "state": "idle",
        "parameters": {"code": "'result = x + 1'"},
        "duration": 0.25,
        "error": "ValueError: bad x",
        "output_preview": "{'result': 2}",
        "cell": "In [3]",
        "traceback": "Cell In [3], line 2, in f\n    x = bad()\nValueError: bad x",
    }
    widget._handle_message(widget, {"type": "select", "node": "nope"}, [])
    assert widget.details == {}
    widget._handle_message(widget, {"type": "select", "node": "a"}, [])
    assert widget.details["id"] == "a"
    widget._handle_message(widget, {"type": "select", "node": None}, [])
    assert widget.details == {}
    widget._handle_message(widget, ["not", "a", "dict"], [])
    widget._handle_message(widget, {"type": "unknown"}, [])
    assert widget.details == {}
    with pytest.raises(ValueError, match=r"no node 'bb' \(did you mean 'b'"):
        widget.select("bb")


def test_details_follow_the_selected_node(make_widget: Callable[..., GraphWidget]) -> None:
    view = _chain_view()
    widget = make_widget(view, update_interval=3600)
    widget.select("b")
    view.events.emit(_event("b", "started"))
    widget.flush()
    assert widget.details["state"] == "running"
    view.errors["b"] = "KeyError: 'x'"
    view.mark("b", "failed")  # the session records the failure outside the run
    widget.flush()
    assert (widget.details["state"], widget.details["error"]) == ("failed", "KeyError: 'x'")
    view._order.remove("b")
    view._edges = [edge for edge in view._edges if "b" not in edge[:2]]
    view._changed()
    widget.flush()
    assert widget.details == {}


def test_details_pass_a_failures_traceback_on(make_widget: Callable[..., GraphWidget]) -> None:
    view = _chain_view()
    widget = make_widget(view)
    widget.select("b")
    assert widget.details["traceback"] is None  # no failure: nothing to show
    failure = (
        "Traceback (most recent call last):\n"
        '  File "<cell In [3]>", line 1, in <module>\n'
        "    result = x + 1\n"
        "TypeError: unsupported operand type(s) for +: 'NoneType' and 'int'\n"
    )
    view.extra_info = {"traceback": failure}
    widget.select("b")
    assert widget.details["traceback"] == failure
    view.extra_info = {"traceback": None}
    widget.select("b")
    assert widget.details["traceback"] is None
    # A very long traceback keeps its end, where the error is: whole lines after an
    # ellipsis line.
    frames = "".join(
        f'  File "<cell In [{i}]>", line 1, in f{i}\n    f{i + 1}()\n' for i in range(400)
    )
    long_failure = "Traceback (most recent call last):\n" + frames + "KeyError: 'x'"
    view.extra_info = {"traceback": long_failure}
    widget.select("b")
    shown = widget.details["traceback"]
    assert 7000 < len(shown) <= 8000
    assert shown.startswith("…\n")
    kept = shown.removeprefix("…\n")
    assert long_failure.endswith("\n" + kept) and kept.endswith("KeyError: 'x'")


def test_repr_and_mimebundle_are_deterministic(make_widget: Callable[..., GraphWidget]) -> None:
    view = _chain_view()
    widget = make_widget(view)
    assert repr(widget) == "<Workflow chain: 3 nodes, 2 edges>"
    data, _metadata = DisplayFormatter().format(widget)
    assert data["text/plain"] == "<Workflow chain: 3 nodes, 2 edges>"
    assert "0x" not in data["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" in data
    svg = data["image/svg+xml"]
    assert svg == widget.to_svg()
    assert svg.startswith("<svg") and 'data-node="b"' in svg and 'data-state="idle"' in svg
    single = NotebookView("solo")
    single.add("only")
    assert repr(make_widget(single)) == "<Workflow solo: 1 node, 0 edges>"


def test_repr_includes_unsent_changes(make_widget: Callable[..., GraphWidget]) -> None:
    view = _chain_view()
    widget = make_widget(view, update_interval=3600)
    view.add("d")
    data, _ = widget._repr_mimebundle_()  # type: ignore[misc]
    assert data["text/plain"] == "<Workflow chain: 4 nodes, 2 edges>"
    assert 'data-node="d"' in data["image/svg+xml"]


def test_no_secret_reaches_the_browser(make_widget: Callable[..., GraphWidget]) -> None:
    view = NotebookView("secrets")
    view.add("call", "result = 1", api_key=SECRET, url="https://api.example.com")
    view.extra_info = {"config": {"api_key": SECRET}}  # a careless extra field
    widget = make_widget(view)
    widget.select("call")
    assert widget.details["parameters"]["api_key"] == "********"
    assert "config" not in widget.details
    everything = json.dumps(widget.get_state(), default=str) + repr(widget) + widget.to_svg()
    assert SECRET not in everything


def test_close_unsubscribes_everything(make_widget: Callable[..., GraphWidget]) -> None:
    view = _chain_view()
    widget = make_widget(view, update_interval=3600)
    view.events.emit(_event("a", "started"))  # leaves a pending update and its timer
    assert view.events.active and view._listeners
    widget.close()
    assert not view.events.active
    assert view._listeners == []
    assert widget._timer is None
    view.events.emit(_event("a", "completed"))
    view.add("later")
    widget.flush()
    widget.close()  # idempotent
    assert repr(widget) == "<Workflow chain: 3 nodes, 2 edges>"


def test_the_run_status_is_the_runs_final_status(make_widget: Callable[..., GraphWidget]) -> None:
    view = NotebookView("status").add("ok").add("leaf", "result = 1 / 0")
    widget = make_widget(view)
    assert widget.run_status == ""
    changes = _count_changes(widget, "run_status")
    results = view.run()
    assert results["leaf"]["failed"] is True
    # A node failed: the run is failed although every other node completed.
    assert widget.run_status == "failed"
    assert [change["new"] for change in changes] == ["running", "failed"]
    assert _states(widget) == {"ok": "completed", "leaf": "failed"}
    clean = NotebookView("clean").add("ok")
    clean_widget = make_widget(clean)
    clean.run()
    assert clean_widget.run_status == "completed"


# -- steps a node reports ---------------------------------------------------------------

AGENT_CODE = """
from kailash_nb.nodes.steps import report_step
report_step("prompt_sent", prompt="hi  there")
report_step("tool_call", tool="search", arguments={"q": "x"})
report_step("tool_result", tool="search", result="2 hits")
report_step("answer", content="done")
result = 1
"""


def test_a_nodes_steps_show_live_and_the_next_run_clears_them(
    make_widget: Callable[..., GraphWidget],
) -> None:
    view = NotebookView("agentic").add("agent", AGENT_CODE).add("plain")
    widget = make_widget(view, update_interval=3600)
    assert widget.steps == {}
    node_changes = _count_changes(widget, "nodes")
    view.run()  # no flush(): the run's end sends the steps with the final states
    assert widget.steps == {
        "agent": {
            "latest": "answer: done",
            "log": [
                "prompt_sent: hi there",
                "tool_call: search",
                "tool_result: search",
                "answer: done",
            ],
        }
    }
    assert len(node_changes) == 1
    step_changes = _count_changes(widget, "steps")
    view.builder = WorkflowBuilder()
    view.builder.add_node("PythonCodeNode", "agent", {"code": "result = 2"})
    view.builder.add_node("PythonCodeNode", "plain", {"code": "result = 1"})
    view.run()
    assert widget.steps == {}
    assert [change["new"] for change in step_changes] == [{}]


def test_the_step_log_is_bounded_and_names_cycle_iterations(
    make_widget: Callable[..., GraphWidget],
) -> None:
    from kailash_nb.notebook.widget import STEP_LOG_LENGTH
    from kailash_nb.runtime.events import NodeStepEvent

    view = NotebookView("loop").add("agent")
    widget = make_widget(view, update_interval=3600)
    node_changes = _count_changes(widget, "nodes")
    for index in range(STEP_LOG_LENGTH + 5):
        view.events.emit(NodeStepEvent("r", "agent", "tool_call", 0.0, {"tool": f"t{index}"}, 2))
    view.events.emit(NodeStepEvent("r", "ghost", "answer", 0.0, {}))  # not in this graph
    view.events.emit(NodeStepEvent("r", "agent", "answer", 0.0, {"content": "y" * 500}))
    assert widget.steps == {}  # coalesced: nothing sent before the interval is up
    widget.flush()
    log = widget.steps["agent"]["log"]
    assert len(log) == STEP_LOG_LENGTH and set(widget.steps) == {"agent"}
    assert log[0] == f"[2] tool_call: t{6}"
    assert log[-1] == widget.steps["agent"]["latest"]
    assert log[-1].startswith("answer: yyy") and log[-1].endswith("…") and len(log[-1]) == 120
    assert node_changes == []  # steps alone do not resend the nodes


def test_widget_js_draws_steps_under_nodes_and_in_the_details() -> None:
    js = WIDGET_JS.read_text(encoding="utf-8")
    assert '"change:steps"' in js and "kn-node-step" in js and "kn-details-steps" in js
