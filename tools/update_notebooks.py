"""Re-execute the notebooks and save their outputs, as ``pytest --nbval`` expects them.

Run after an intended change of output (``make update-notebooks``), then review the diff.
Each notebook runs in a fresh python3 kernel from its own directory, exactly as nbval
runs it. Widget state is not saved: it would hold the widget's JavaScript and random
model ids, and saved notebooks show the widget's static SVG instead.

Usage: python3 tools/update_notebooks.py [NOTEBOOK ...]   (default: notebooks/*.ipynb)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def update(path: Path) -> None:
    """Execute ``path`` in place; raises ``CellExecutionError`` naming a failing cell
    that is not tagged ``raises-exception``."""
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("widgets", None)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        store_widget_state=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    nbformat.write(notebook, path)


def main(arguments: list[str]) -> int:
    paths = [Path(argument) for argument in arguments] or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        started = time.monotonic()
        update(path)
        print(f"updated {path} in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
