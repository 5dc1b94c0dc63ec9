"""Rebuilding a notebook's workflows from its saved ``.ipynb`` file.

``load_notebook`` runs the notebook's code cells in order in a fresh IPython
``InteractiveShell`` with the ``kailash_nb`` extension loaded, skipping display-only
and side-effect statements (see ``serve_cells`` for the exact rule), then builds every
workflow a cell published with ``kn.publish`` / ``%kailash publish``. ``kailash-nb
serve`` registers them on a gateway. ``load_notebook_workflow`` runs the cells the same
way and builds one notebook workflow, published or not (``kailash-nb run``)::

    loaded = load_notebook("pricing.ipynb")
    loaded.workflows        # {"pricing": <Workflow>}
    name, workflow, skipped = load_notebook_workflow("pricing.ipynb")  # the current one

Cells run in this process (call it from a fresh one: the notebook's workflows and
marks are process-wide). Cell output is captured; it is shown only when a cell fails.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kailash_nb.notebook.errors import NotebookError
from kailash_nb.notebook.serve_cells import SKIP_TAG, CellFilter

__all__ = ["LoadedNotebook", "NotebookServeError", "load_notebook", "load_notebook_workflow"]

# ``kailash_nb.notebook.publish`` is the function once the package is imported; the
# module is read from the import system instead.
_publish = importlib.import_module("kailash_nb.notebook.publish")


class NotebookServeError(NotebookError):
    """The notebook cannot be served: unreadable, a cell failed, nothing published."""


@dataclass
class LoadedNotebook:
    """The workflows a notebook published, and what was skipped to build them.

    Attributes:
        workflows: ``{route: built Workflow}``, in publish order.
        sources: ``{route: notebook workflow name}``.
        skipped: one line per skipped cell or statement (``"cell 4: kn.run()"``).
        mcp: a cell published with ``--mcp`` (``mcp=True``): serve the workflows as
            MCP tools too.
    """

    workflows: dict[str, Any]
    sources: dict[str, str]
    skipped: list[str] = field(default_factory=list)
    mcp: bool = False


def load_notebook(path: str | Path) -> LoadedNotebook:
    """Run ``path``'s code cells (skipping display-only and side-effect statements) and
    build the published workflows.

    Raises:
        NotebookServeError: the file is not a notebook, a kept statement raised (the
            message names the cell and shows its output), or nothing is published.
    """
    path = Path(path)
    skipped = _run_cells(path)
    sources = {route: name for name, route in _publish.published().items()}
    if not sources:
        raise NotebookServeError(
            f"{path.name} publishes no workflow: add a cell with %kailash publish NAME "
            "(or kn.publish('NAME')) and save the notebook"
        )
    return LoadedNotebook(_publish.build_published(), sources, skipped, mcp=_publish.serves_mcp())


def load_notebook_workflow(path: str | Path, name: str | None = None) -> tuple[str, Any, list[str]]:
    """Run ``path``'s code cells as ``load_notebook`` does and build one notebook
    workflow: ``name``, or the workflow current after the last cell (the one a final
    ``kn.run()`` would run). Returns ``(workflow name, built Workflow, skipped lines)``.

    Raises:
        NotebookServeError: the file is not a notebook, a kept statement raised, there
            is no workflow ``name`` (the known ones are listed), or it has no nodes.
    """
    from kailash_nb.notebook import session as _session
    from kailash_nb.sdk_exceptions import close_matches

    path = Path(path)
    skipped = _run_cells(path)
    known = {key: value for key, value in _session._sessions.items() if value.definitions}
    if name is None:
        chosen = _session.current()
    elif name in _session._sessions:
        chosen = _session._sessions[name]
    else:
        raise NotebookServeError(
            f"{path.name} defines no workflow {name!r}{close_matches(name, known)}; "
            f"its workflows: {', '.join(known) or 'none'}"
        )
    if not chosen.definitions:
        others = f"; its workflows with nodes: {', '.join(known)}" if known else ""
        raise NotebookServeError(
            f"{path.name}: workflow {chosen.name!r} has no nodes after the last cell{others}"
        )
    return chosen.name, chosen.build(), skipped


def _run_cells(path: Path) -> list[str]:
    """Run the notebook's kept statements in a fresh shell; return the skipped lines."""
    import nbformat
    from IPython.core.interactiveshell import InteractiveShell

    try:
        document = nbformat.read(path, as_version=4)
    except (OSError, ValueError) as exc:
        raise NotebookServeError(f"cannot read notebook {str(path)!r}: {exc}") from None
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("kailash_nb")
    shell.run_line_magic("colors", "nocolor")
    cells = CellFilter(shell.user_ns)
    skipped: list[str] = []
    with _publish.serving():
        for index, cell in enumerate(document.cells, 1):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            if SKIP_TAG in cell.get("metadata", {}).get("tags", []):
                skipped.append(f"cell {index}: tagged {SKIP_TAG}")
                continue
            plan = cells.plan(cell.source, shell.transform_cell(cell.source))
            skipped.extend(f"cell {index}: {line}" for line in plan.skipped)
            if plan.code is not None:
                _run_cell(shell, plan.code, index, path)
    return skipped


def _run_cell(shell: Any, code: str, index: int, path: Path) -> None:
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        result = shell.run_cell(code, store_history=True)
    if result.success:
        return
    error = result.error_before_exec or result.error_in_exec
    shown = output.getvalue().strip()
    raise NotebookServeError(
        f"{path.name}: cell {index} failed: {type(error).__name__}: {error}"
        + (f"\n{shown}" if shown else "")
    )
