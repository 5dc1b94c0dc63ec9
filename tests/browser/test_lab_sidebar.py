"""The Kailash sidebar of the JupyterLab extension, in a real Lab in headless Chromium.

Opens ``notebooks/01-quickstart.ipynb`` (outputs cleared) with the sidebar open, runs its
first cell (the import: the sidebar links to the kernel), then every cell, and checks
through the DOM what a user sees: the sidebar lists the workflow and its four nodes,
every node passes through a running state and ends done (``completed``, or ``cached``
where the last re-run reused it), both runs are listed as completed and open their node
timeline, a click on a node selects the cell that defined it, the run button runs the
workflow again, the graph opens in the main area, and after a reload the sidebar is back
in its place with the kernel's state. Saves a screenshot to ``docs/lab-sidebar.png`` for
the README.

The extension must be installed in this Python's environment (``pip install -e .``
builds and installs it); the test fails, naming the command, when it is missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
SCREENSHOT = REPO / "docs" / "lab-sidebar.png"
SIDEBAR = "#kailash-nb-sidebar"
WORKFLOW = f'{SIDEBAR} .kn-lab-workflow[data-workflow="quickstart"]'

# Records every state each node of the sidebar shows, from before the run starts: the
# sidebar re-renders on every kernel message, so each state it passes through is seen.
_WATCH_STATES_JS = """(selector) => {
  window.knSeen = {};
  const record = () => {
    for (const node of document.querySelectorAll(selector + ' .kn-lab-node')) {
      const seen = (window.knSeen[node.dataset.node] ||= []);
      if (seen[seen.length - 1] !== node.dataset.state) seen.push(node.dataset.state);
    }
  };
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true,
    attributes: true, attributeFilter: ['data-state']});
  record();
}"""

_SIDEBAR_STATES_JS = """(selector) => Object.fromEntries(
  [...document.querySelectorAll(selector + ' .kn-lab-node')]
    .map((node) => [node.dataset.node, node.dataset.state]))"""


def _extension_installed() -> bool:
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter", "labextension", "list"],
        capture_output=True,
        text=True,
        check=False,
    )
    output = listing.stdout + listing.stderr
    return any("kailash-nb" in line and "enabled" in line for line in output.splitlines())


def test_the_sidebar_follows_the_quickstart_and_jumps_to_defining_cells(
    lab_server, lab_page, page_errors
):
    assert _extension_installed(), (
        "the kailash-nb JupyterLab extension is not installed in this environment; "
        "`pip install -e .` builds and installs it"
    )
    code_cells, _ = copy_without_outputs(NOTEBOOK, lab_server.root)
    page = lab_page
    page.goto(f"{lab_server.url}/lab/tree/{NOTEBOOK.name}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell")
    page.locator('.jp-SideBar [data-id="kailash-nb-sidebar"]').click()
    page.locator(SIDEBAR).wait_for()
    select_python3_kernel(page)
    # Before kailash_nb is imported, the sidebar says how to start; once the cell that
    # imports it has run, the sidebar is linked to the kernel.
    page.locator(f'{SIDEBAR} .kn-lab-connection[data-connection="not-loaded"]').wait_for()
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    first = page.locator(".jp-Notebook .jp-CodeCell").first
    first.click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_function(
        "(cell) => /^\\[\\d+\\]:$/.test(cell.querySelector('.jp-InputArea-prompt')"
        ".textContent.trim())",
        arg=first.element_handle(),
    )
    connected = page.locator(f'{SIDEBAR} .kn-lab-connection[data-connection="connected"]')
    try:
        connected.wait_for()
    except Exception:
        state = page.locator(f"{SIDEBAR} .kn-lab-connection").get_attribute("data-connection")
        pytest.fail(f"the sidebar did not link up (it says {state!r}); console: {console}")
    page.evaluate(_WATCH_STATES_JS, WORKFLOW)

    run_all_cells(page, code_cells, page_errors)

    page.wait_for_function(
        """([selector, expected]) => {
          const nodes = [...document.querySelectorAll(selector + ' .kn-lab-node')];
          const runs = document.querySelectorAll('#kailash-nb-sidebar .kn-lab-run');
          return nodes.length === 4 && runs.length === 2 && nodes.every(
            (node) => expected[node.dataset.node] === node.dataset.state);
        }""",
        arg=[
            WORKFLOW,
            {
                **dict.fromkeys(RERUN_COMPLETED, "completed"),
                **dict.fromkeys(RERUN_CACHED, "cached"),
            },
        ],
        timeout=15_000,
    )
    states = page.evaluate(_SIDEBAR_STATES_JS, WORKFLOW)
    assert set(states) == NODES, states
    seen = page.evaluate("() => window.knSeen")
    for node in NODES:
        # The first run executes every node: each is shown running, then done.
        assert "running" in seen[node], (node, seen)
        assert seen[node].index("running") < seen[node].index("completed"), (node, seen)

    runs = page.locator(f"{SIDEBAR} .kn-lab-run")
    assert runs.evaluate_all("(runs) => runs.map((run) => run.dataset.status)") == [
        "completed",
        "completed",
    ]
    # The newest run first: its timeline shows what it executed and what it reused.
    runs.first.locator(".kn-lab-run-header").click()
    timeline = runs.first.locator(".kn-lab-timeline-node")
    timeline.first.wait_for()
    entries = dict(
        zip(
            timeline.evaluate_all("(nodes) => nodes.map((node) => node.dataset.node)"),
            timeline.evaluate_all("(nodes) => nodes.map((node) => node.dataset.state)"),
            strict=True,
        )
    )
    assert entries == {
        **dict.fromkeys(RERUN_COMPLETED, "completed"),
        **dict.fromkeys(RERUN_CACHED, "cached"),
    }, entries

    # A click on a node selects the cell that (last) defined it.
    for node, defined in (("orders", "def orders():"), ("summarize", "count, amount")):
        page.locator(f'{WORKFLOW} .kn-lab-node[data-node="{node}"]').click()
        active = page.locator(".jp-Notebook .jp-Cell.jp-mod-active")
        page.wait_for_function(
            "(text) => document.querySelector('.jp-Notebook .jp-Cell.jp-mod-active')"
            "?.textContent.includes(text)",
            arg=defined,
        )
        label = page.locator(f'{WORKFLOW} .kn-lab-node[data-node="{node}"] .kn-lab-node-cell')
        prompt = active.locator(".jp-InputArea-prompt").text_content().strip()
        assert prompt == label.text_content().replace("In ", "") + ":", (prompt, node)

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT, clip={"x": 0, "y": 0, "width": 1100, "height": 700})

    # The sidebar's run button runs the workflow in the kernel: nothing changed, so every
    # node comes from the cache, and the run is listed first.
    page.locator(f"{WORKFLOW} .kn-lab-run-workflow").click()
    page.wait_for_function(
        "() => document.querySelectorAll('#kailash-nb-sidebar .kn-lab-run').length === 3"
    )
    newest = page.locator(f"{SIDEBAR} .kn-lab-run").first
    page.wait_for_function(
        "() => document.querySelector('#kailash-nb-sidebar .kn-lab-run')"
        ".dataset.status === 'completed'"
    )
    assert page.evaluate(_SIDEBAR_STATES_JS, WORKFLOW) == dict.fromkeys(NODES, "cached")
    assert newest.get_attribute("data-status") == "completed"

    # The graph opens in the main area, drawn by the kernel.
    page.locator(f"{WORKFLOW} .kn-lab-show-graph").click()
    graph = page.locator('.kn-lab-graph[data-workflow="quickstart"] img')
    page.wait_for_function("() => document.querySelector('.kn-lab-graph img')?.naturalWidth > 0")
    assert graph.get_attribute("src").startswith("blob:")

    # After a reload the sidebar is where it was, and the kernel gives it its state again.
    page.reload()
    page.locator(SIDEBAR).wait_for()
    assert page.locator(SIDEBAR).is_visible()
    page.wait_for_function(
        "() => document.querySelectorAll('#kailash-nb-sidebar .kn-lab-run').length === 3"
    )
    assert not page_errors, page_errors
