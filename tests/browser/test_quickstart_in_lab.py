"""The quickstart notebook, run in JupyterLab in a real browser, as a person would.

Opens ``notebooks/01-quickstart.ipynb`` (outputs cleared) in headless Chromium, picks the
python3 kernel, runs all cells from the Run menu, and checks the graph widget: every node
of the workflow is drawn and settles in ``completed``, or ``cached`` where the last re-run
reused it. A click on a node opens its details beside the graph, covering none of it, and
the legend names every node state. Saves a screenshot of the widget to ``docs/widget.png``
for the README.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kailash_nb.notebook.view import NODE_STATES
from tests.browser._quickstart import (
    NODES,
    NOTEBOOK,
    RERUN_CACHED,
    RERUN_COMPLETED,
    copy_without_outputs,
    run_all_cells,
    select_python3_kernel,
)

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "widget.png"

# The root of each live widget view (widget.js), not the static SVG fallback of the output.
WIDGET_VIEW = ".jp-OutputArea-output .kn-widget"

# data-node -> data-state of the nodes in each widget view's SVG, in document order.
_WIDGET_STATES_JS = """(selector) => [...document.querySelectorAll(selector)].map((view) =>
  Object.fromEntries([...view.querySelectorAll('svg [data-node]')]
    .map((node) => [node.dataset.node, node.dataset.state])))"""


# Bounding boxes of the widget view's graph and details panel.
_BOXES_JS = """(view) => Object.fromEntries(['svg.kn-graph', '.kn-details'].map((selector) => {
  const box = view.querySelector(selector).getBoundingClientRect();
  return [selector, {left: box.left, top: box.top, right: box.right, bottom: box.bottom}];
}))"""


def _settled_widget_states(page, count: int, page_errors: list[str]) -> list[dict[str, str]]:
    """The node states of ``count`` widget views once every node shows completed or cached
    (state updates reach the browser shortly after the cell that caused them finishes)."""
    settled = {"completed", "cached"}
    deadline = time.monotonic() + 15
    views: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        views = page.evaluate(_WIDGET_STATES_JS, WIDGET_VIEW)
        states = {state for view in views for state in view.values()}
        if len(views) == count and all(views) and states <= settled:
            return views
        page.wait_for_timeout(200)
    pytest.fail(
        f"expected {count} graph widgets whose nodes all reach completed or cached, got "
        f"{views}; page errors: {page_errors}"
    )


def test_quickstart_runs_in_lab_and_the_widget_shows_every_node_state(
    lab_server, lab_page, page_errors
):
    assert NOTEBOOK.exists(), f"{NOTEBOOK} is missing"
    code_cells, shows = copy_without_outputs(NOTEBOOK, lab_server.root)
    page = lab_page

    page.goto(f"{lab_server.url}/lab/tree/{NOTEBOOK.name}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    select_python3_kernel(page)
    run_all_cells(page, code_cells, page_errors)

    views = _settled_widget_states(page, shows, page_errors)
    last = views[-1]
    assert set(last) == NODES, f"the graph shows {sorted(last)}, expected {sorted(NODES)}"
    assert {node for node, state in last.items() if state == "completed"} == RERUN_COMPLETED
    assert {node for node, state in last.items() if state == "cached"} == RERUN_CACHED
    # Graphs shown earlier follow the workflow live, so they end in the same states.
    assert all(view == last for view in views), views

    # A click on a node asks Python for its details (a custom message), which come back
    # through the widget's `details` trait.
    widget = page.locator(WIDGET_VIEW).last
    widget.locator('[data-node="summarize"]').first.click()
    details = widget.locator('.kn-details[data-node="summarize"]')
    details.wait_for()
    assert details.get_attribute("data-state") == "completed"
    # The last run's status comes from its final run event.
    assert widget.get_attribute("data-run-status") == "completed"

    page.keyboard.press("Control+b")  # hide the file browser: room for the whole graph
    widget.scroll_into_view_if_needed()
    # The legend names every state; the panel sits beside the graph (or below it on a
    # narrow page), never over it: the rightmost node still takes a click.
    legend = widget.locator(".kn-legend-item")
    assert legend.evaluate_all("(items) => items.map((item) => item.dataset.state)") == list(
        NODE_STATES
    )
    boxes = widget.evaluate(_BOXES_JS)
    graph, panel = boxes["svg.kn-graph"], boxes[".kn-details"]
    assert panel["left"] >= graph["right"] or panel["top"] >= graph["bottom"], boxes
    widget.locator('[data-node="report"]').first.click()
    widget.locator('.kn-details[data-node="report"]').wait_for()
    widget.locator('[data-node="summarize"]').first.click()
    details.wait_for()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    widget.screenshot(path=SCREENSHOT)
