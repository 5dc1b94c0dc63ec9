"""The graph widget's front end (``widget.js``) in headless Chromium, without JupyterLab.

A minimal page loads the widget's ESM and renders it with a stand-in for anywidget's model
holding the traits a real ``GraphWidget`` produced: a workflow whose ``summarize`` node
failed. The test checks the legend (every node state, in the nodes' colours), that the
details panel sits beside the graph when there is room and below it when not (never over
it: every node stays clickable), and that a failure's traceback is shown as IPython shows
an error, as text only. A screenshot of the failure is saved to ``docs/widget-failure.png``.
"""

from __future__ import annotations

import itertools
import linecache
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kailash_nb.notebook.svg import STATE_COLORS
from kailash_nb.notebook.view import NODE_STATES, NodeInfo
from kailash_nb.notebook.widget import GraphWidget
from kailash_nb.runtime.events import EventBus

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
WIDGET_JS = REPO / "kailash_nb" / "notebook" / "widget.js"
SCREENSHOT = REPO / "docs" / "widget-failure.png"
# Never fetched from the network: the page routes this origin to the files above.
ORIGIN = "http://widget.test"

# orders -> clean -> summarize -> report; summarize failed, so report was skipped.
STATES = {"orders": "completed", "clean": "cached", "summarize": "failed", "report": "skipped"}
TYPES = {"orders": "CSVReaderNode", "clean": "PythonCodeNode"}
CELL = "<cell In [4]>"
CELL_SOURCE = (
    "def summarize(rows):\n"
    "    total = sum(row['amount'] for row in rows)\n"
    "    return {'mean': total / len(rows)}\n"
)

# The page: the widget's ESM rendered into #host by a stand-in of anywidget's model.
PAGE = """<!doctype html><html><body style="margin: 16px; background: #fff">
<div id="host"></div>
<script type="module">
import widget from "/widget.js";
class Model {
  constructor(state) { this.state = state; this.handlers = {}; this.sent = []; }
  get(name) { return this.state[name]; }
  set(name, value) {
    this.state[name] = value;
    for (const handler of this.handlers[`change:${name}`] ?? []) handler();
  }
  on(event, handler) { (this.handlers[event] ??= []).push(handler); }
  off(event, handler) {
    this.handlers[event] = (this.handlers[event] ?? []).filter((h) => h !== handler);
  }
  send(content) { this.sent.push(content); }
}
window.mount = (state, width) => {
  const host = document.getElementById("host");
  host.style.width = `${width}px`;
  window.model = new Model(state);
  widget.render({ model: window.model, el: host });
};
window.ready = true;
</script></body></html>"""

_BOX_JS = """(selector) => {
  const box = document.querySelector(selector).getBoundingClientRect();
  return {left: box.left, top: box.top, right: box.right, bottom: box.bottom};
}"""


class FailedRunView:
    """A ``WorkflowView`` of four nodes after a run in which ``summarize`` failed."""

    name = "sales"

    def __init__(self, failure: str) -> None:
        self._events = EventBus()
        self._traceback = failure

    @property
    def events(self) -> EventBus:
        return self._events

    def node_ids(self) -> list[str]:
        return list(STATES)

    def edges(self) -> list[tuple[str, str, str]]:
        ids = list(STATES)
        return [(a, b, "result -> rows") for a, b in itertools.pairwise(ids)]

    def node_info(self, node_id: str) -> NodeInfo:
        failed = node_id == "summarize"
        info: dict[str, Any] = {
            "id": node_id,
            "type": TYPES.get(node_id, "FunctionNode"),
            "state": STATES[node_id],
            "parameters": {},
            "duration": 0.0012,
            "error": "ZeroDivisionError: division by zero" if failed else None,
            "output_preview": None,
            "cell": "In [4]" if failed else None,
            "traceback": self._traceback if failed else None,
        }
        return info  # type: ignore[return-value]

    def run_status(self) -> str:
        return "failed"

    def add_listener(self, callback: Callable[[], Any]) -> Callable[[], None]:
        return lambda: None


def _real_traceback() -> str:
    """A traceback of a function defined in a notebook cell, user frames only."""
    linecache.cache[CELL] = (len(CELL_SOURCE), None, CELL_SOURCE.splitlines(True), CELL)
    namespace: dict[str, Any] = {}
    exec(compile(CELL_SOURCE, CELL, "exec"), namespace)
    try:
        namespace["summarize"]([])
    except ZeroDivisionError as error:
        summary = traceback.TracebackException.from_exception(error)
        summary.stack = traceback.StackSummary.from_list(
            [frame for frame in summary.stack if frame.filename == CELL]
        )
        return "".join(summary.format())
    raise AssertionError("summarize([]) did not fail")


def _widget_state(failure: str) -> dict[str, Any]:
    """The synced traits of a real ``GraphWidget`` with ``summarize`` selected."""
    widget = GraphWidget(FailedRunView(failure))
    try:
        widget.select("summarize")
        state = widget.get_state()
    finally:
        widget.close()
    names = ("workflow_name", "nodes", "edges", "size", "details", "edge_labels", "run_status")
    return {name: state[name] for name in names}


def _open(page, state: dict[str, Any], width: int) -> None:
    def serve(route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/widget.js":
            route.fulfill(body=WIDGET_JS.read_text(), content_type="text/javascript")
        else:
            route.fulfill(body=PAGE, content_type="text/html")

    page.route(f"{ORIGIN}/**", serve)
    page.goto(f"{ORIGIN}/index.html")
    page.wait_for_function("window.ready === true")
    page.evaluate("([state, width]) => window.mount(state, width)", [state, width])
    page.wait_for_selector('.kn-details[data-node="summarize"]')


def _hex_to_rgb(color: str) -> str:
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and (b["top"] < a["bottom"])
    )


def _check_graph_uncovered(page, state: dict[str, Any]) -> None:
    """The graph keeps its full size, nothing overlaps it, and every node takes a click."""
    graph = page.evaluate(_BOX_JS, "svg.kn-graph")
    panel = page.evaluate(_BOX_JS, ".kn-details")
    assert not _overlap(graph, panel), (graph, panel)
    assert graph["right"] - graph["left"] == pytest.approx(state["size"]["width"], abs=1)
    scroll = page.evaluate(
        "() => { const c = document.querySelector('.kn-canvas');"
        " return [c.scrollWidth, c.clientWidth]; }"
    )
    assert scroll[0] <= scroll[1], f"the graph scrolls inside its canvas: {scroll}"
    # Playwright clicks only once the node itself receives the click at its centre.
    for node in STATES:
        page.locator(f'.kn-node[data-node="{node}"]').click(timeout=5_000)
    sent = page.evaluate("() => window.model.sent")
    assert sent == [{"type": "select", "node": node} for node in STATES]


def test_legend_panel_beside_the_graph_and_traceback(lab_page, page_errors):
    page = lab_page
    failure = _real_traceback()
    state = _widget_state(failure)
    assert state["details"]["traceback"] == failure
    width = state["size"]["width"]
    _open(page, state, width + 600)

    # The legend: every state, in order, each swatch in the colours of the nodes.
    items = page.evaluate(
        """() => [...document.querySelectorAll('.kn-legend-item')].map((item) => {
          const swatch = getComputedStyle(item.querySelector('.kn-legend-swatch'));
          return [item.dataset.state, item.textContent, swatch.backgroundColor,
                  swatch.borderTopColor];
        })"""
    )
    assert [item[0] for item in items] == list(NODE_STATES)
    assert [item[1] for item in items] == list(NODE_STATES)
    for state_name, _text, fill, stroke in items:
        expected_fill, expected_stroke = STATE_COLORS[state_name]
        assert (fill, stroke) == (_hex_to_rgb(expected_fill), _hex_to_rgb(expected_stroke))
    node_fill = page.locator('.kn-node[data-node="summarize"] rect').get_attribute("fill")
    assert node_fill == STATE_COLORS["failed"][0]
    assert page.locator(".kn-widget").get_attribute("data-run-status") == "failed"

    # The panel is beside the graph (to its right, from the same top).
    graph = page.evaluate(_BOX_JS, "svg.kn-graph")
    panel = page.evaluate(_BOX_JS, ".kn-details")
    assert panel["left"] >= graph["right"], (graph, panel)

    # The traceback, as IPython shows it: monospace, line by line, the error emphasised;
    # the error alone is not repeated above it.
    block = page.locator(".kn-details pre.kn-details-traceback")
    assert block.text_content() == failure.rstrip()
    assert "monospace" in block.evaluate("(pre) => getComputedStyle(pre).fontFamily") or (
        "Menlo" in block.evaluate("(pre) => getComputedStyle(pre).fontFamily")
    )
    assert block.evaluate("(pre) => getComputedStyle(pre).whiteSpace") == "pre-wrap"
    emphasised = block.locator(".kn-tb-exception")
    assert emphasised.all_text_contents() == ["ZeroDivisionError: division by zero"]
    assert emphasised.evaluate("(span) => getComputedStyle(span).fontWeight") == "700"
    assert "return {'mean': total / len(rows)}" in block.locator(".kn-tb-line").last.inner_text()
    assert page.locator(".kn-details-error").count() == 0
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.locator(".kn-widget").screenshot(path=SCREENSHOT)

    _check_graph_uncovered(page, state)
    assert page_errors == []


def test_panel_goes_below_a_graph_too_wide_to_share_the_row(lab_page, page_errors):
    page = lab_page
    state = _widget_state(_real_traceback())
    width = state["size"]["width"]
    _open(page, state, width + 120)  # no room for the panel's 240 px minimum
    graph = page.evaluate(_BOX_JS, "svg.kn-graph")
    panel = page.evaluate(_BOX_JS, ".kn-details")
    assert panel["top"] >= graph["bottom"], (graph, panel)
    _check_graph_uncovered(page, state)
    assert page_errors == []


def test_traceback_and_error_are_text_never_markup(lab_page, page_errors):
    page = lab_page
    attack = '<img src="x" onerror="window.injected = 1"><b>bold</b>'
    hostile = (
        f'Traceback (most recent call last):\n  File "{attack}", line 1\n    {attack}\n'
        f"ValueError: {attack}\n"
    )
    state = _widget_state(hostile)
    state["details"]["error"] = f"unrelated {attack}"  # shown too: not in the traceback
    _open(page, state, state["size"]["width"] + 600)
    details = page.locator(".kn-details")
    assert details.locator("img, b").count() == 0
    assert page.locator(".kn-details-traceback").text_content() == hostile.rstrip()
    assert page.locator(".kn-details-error").text_content() == f"unrelated {attack}"
    assert page.locator(".kn-tb-exception").all_text_contents() == [f"ValueError: {attack}"]
    assert page.evaluate("() => window.injected") is None

    # Older data without the key shows no traceback block, and the error as before.
    older = dict(state["details"])
    del older["traceback"]
    page.evaluate("(details) => window.model.set('details', details)", older)
    assert page.locator(".kn-details-traceback").count() == 0
    assert page.locator(".kn-details-error").text_content() == f"unrelated {attack}"
    assert page_errors == []


def test_an_ipython_style_traceback_keeps_its_marks(lab_page, page_errors):
    page = lab_page
    ipython = (
        "---------------------------------------------------------------------------\n"
        "ZeroDivisionError                         Traceback (most recent call last)\n"
        "Cell In[4], line 3\n"
        "      1 def summarize(rows):\n"
        "      2     total = sum(row['amount'] for row in rows)\n"
        "----> 3     return {'mean': total / len(rows)}\n"
        "\n"
        "ZeroDivisionError: division by zero\n"
    )
    state = _widget_state(ipython)
    _open(page, state, state["size"]["width"] + 600)
    block = page.locator(".kn-details-traceback")
    assert block.text_content() == ipython.rstrip()
    assert block.locator(".kn-tb-exception").all_text_contents() == [
        "ZeroDivisionError: division by zero"
    ]
    assert block.locator(".kn-tb-frame").all_text_contents() == ["Cell In[4], line 3\n"]
    assert block.locator(".kn-tb-line").all_text_contents() == [
        "----> 3     return {'mean': total / len(rows)}\n"
    ]
    assert page_errors == []


def test_steps_show_under_their_node_and_in_its_details_as_text(lab_page, page_errors):
    """The latest step a node reported is drawn under it, its step log is listed in its
    details panel, both as text only; a new run (``steps`` emptied) removes both."""
    from kailash_nb.runtime.events import NodeStepEvent

    page = lab_page
    attack = '<img src="x" onerror="window.injected = 1">'
    view = FailedRunView(_real_traceback())
    widget = GraphWidget(view, update_interval=3600)
    try:
        widget.select("summarize")
        for step, detail in (
            ("prompt_sent", {"prompt": "sum the amounts"}),
            ("tool_call", {"tool": "calculator"}),
            ("answer", {"content": attack}),
        ):
            view.events.emit(NodeStepEvent("r", "summarize", step, 0.0, detail))
        widget.flush()
        state = widget.get_state()
    finally:
        widget.close()
    names = ("workflow_name", "nodes", "edges", "size", "details", "edge_labels", "run_status")
    _open(page, {**{name: state[name] for name in names}, "steps": state["steps"]}, 1200)
    label = page.locator('.kn-node[data-node="summarize"] .kn-node-step')
    assert label.get_attribute("data-step") == f"answer: {attack}"
    assert label.get_attribute("visibility") == "visible"
    assert (
        page.locator('.kn-node[data-node="orders"] .kn-node-step').get_attribute("visibility")
        == "hidden"
    )
    assert page.locator(".kn-details-steps li").all_text_contents() == [
        "prompt_sent: sum the amounts",
        "tool_call: calculator",
        f"answer: {attack}",
    ]
    assert page.locator("img").count() == 0
    page.evaluate("() => window.model.set('steps', {})")
    assert label.get_attribute("visibility") == "hidden"
    assert page.locator(".kn-details-steps").count() == 0
    assert page.evaluate("() => window.injected") is None
    assert page_errors == []
