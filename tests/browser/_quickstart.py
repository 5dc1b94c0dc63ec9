"""The quickstart notebook in JupyterLab: what the browser tests that open it share."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "01-quickstart.ipynb"

# The quickstart's workflow, and what its last run re-executes after `summarize` is
# redefined: that node and everything downstream of it; the rest comes from the cache.
NODES = {"orders", "clean", "summarize", "report"}
RERUN_COMPLETED = {"summarize", "report"}
RERUN_CACHED = NODES - RERUN_COMPLETED

RUN_ALL_TIMEOUT = 60.0
# Prompts of every code cell, and the text of any error output, in document order.
_CELL_STATUS_JS = """() => ({
  prompts: [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]
    .map((prompt) => prompt.textContent.trim()),
  errors: [...document.querySelectorAll(
      '.jp-Notebook .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map((output) => output.textContent),
})"""


def copy_without_outputs(source: Path, root: Path) -> tuple[int, int]:
    """Copy a notebook into the server root with outputs and execution counts cleared, so
    every prompt and widget on the page comes from this test's run; returns its number of
    code cells and of cells that show the graph."""
    notebook = json.loads(source.read_text())
    code_cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    for cell in code_cells:
        cell["outputs"] = []
        cell["execution_count"] = None
    (root / source.name).write_text(json.dumps(notebook, indent=1))
    shows = sum("kn.show()" in "".join(cell["source"]) for cell in code_cells)
    return len(code_cells), shows


def select_python3_kernel(page) -> None:
    page.locator(".jp-NotebookPanel-toolbar .jp-KernelName").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("select").select_option(
        value=json.dumps({"name": "python3"}, separators=(",", ":"))
    )
    dialog.locator("button.jp-mod-accept").click()
    dialog.wait_for(state="detached")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")


def run_all_cells(page, code_cells: int, page_errors: list[str]) -> None:
    page.locator("#jp-MainMenu").get_by_text("Run", exact=True).click()
    page.locator(".lm-Menu-content").get_by_text("Run All Cells", exact=True).click()
    deadline = time.monotonic() + RUN_ALL_TIMEOUT
    status = page.evaluate(_CELL_STATUS_JS)
    while time.monotonic() < deadline:
        status = page.evaluate(_CELL_STATUS_JS)
        if status["errors"]:
            pytest.fail("a cell failed in JupyterLab:\n" + "\n".join(status["errors"]))
        done = [prompt for prompt in status["prompts"] if re.fullmatch(r"\[\d+\]:", prompt)]
        if len(status["prompts"]) == code_cells and len(done) == code_cells:
            return
        page.wait_for_timeout(200)
    pytest.fail(
        f"not every one of the {code_cells} code cells ran within {RUN_ALL_TIMEOUT:.0f} s; "
        f"prompts: {status['prompts']}; page errors: {page_errors}"
    )
