"""``kailash-nb run NOTEBOOK.ipynb``: the notebook's workflow run headless, and what
``run`` and ``serve`` skip of its cells."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
from _run_cli import ROOT, cli_env, one_error_line, run_cli
from _serve_cli import free_port, serve_cli
from nbformat.v4 import new_code_cell, new_notebook

import kailash_nb as kn
from kailash_nb.notebook.serve_cells import CellFilter

QUICKSTART = ROOT / "notebooks" / "01-quickstart.ipynb"
DATA_PIPELINE = ROOT / "notebooks" / "02-data-pipeline.ipynb"


@pytest.fixture
def store(tmp_path):
    return cli_env(KAILASH_NB_DATABASE_URL=f"sqlite:///{tmp_path / 'runs.db'}")


def saved_output(notebook: Path, source_start: str) -> str:
    """The saved plain-text output of the last code cell starting with ``source_start``."""
    document = nbformat.read(notebook, as_version=4)
    cells = [
        cell
        for cell in document.cells
        if cell.cell_type == "code" and cell.source.startswith(source_start)
    ]
    output = cells[-1].outputs[0]
    return output.get("text") or output["data"]["text/plain"]


def test_run_quickstart_prints_the_results_of_the_notebook_run(store):
    completed = run_cli("run", str(QUICKSTART), "--json", env=store)

    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["status"] == "completed"
    results = report["results"]
    assert list(results) == ["orders", "clean", "summarize", "report"]
    # The notebook's last cells print the re-run's report and show its table.
    assert results["report"]["result"] + "\n" == saved_output(QUICKSTART, "print(rerun.value")
    table = saved_output(QUICKSTART, "rerun = kn.run()")
    summarize_line = next(line for line in table.splitlines() if line.startswith("summarize"))
    summarized = ast.literal_eval(summarize_line[summarize_line.index("{") :])
    assert results["summarize"]["result"] == {
        region: list(totals) for region, totals in summarized.items()
    }
    assert "skipped cell 14: rerun = kn.run()" in completed.stderr
    assert "running notebook workflow 'quickstart'" in completed.stderr


def test_run_data_pipeline_skips_its_tagged_cleanup_cell(tmp_path):
    # The notebook's last cell removes its working directory: tagged kailash-nb-skip, it
    # does not run before the workflow reads orders.csv there. (Its working directory is
    # made under TMPDIR, so it stays inside tmp_path.)
    env = cli_env(KAILASH_NB_DATABASE_URL=f"sqlite:///{tmp_path / 'runs.db'}", TMPDIR=str(tmp_path))
    completed = run_cli("run", str(DATA_PIPELINE), "--json", env=env)

    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["status"] == "completed"
    assert set(report["results"]) == {"orders", "paid_orders", "totals", "store"}
    assert "tagged kailash-nb-skip" in completed.stderr


def write(path: Path, *sources: str) -> Path:
    nbformat.write(new_notebook(cells=[new_code_cell(source) for source in sources]), path)
    return path


TWO_WORKFLOWS = (
    "import kailash_nb as kn\n%load_ext kailash_nb",
    "kn.workflow('prices')\n\n@kn.node\ndef price(qty=1, unit=2.5):\n    return qty * unit\n",
    "kn.workflow('greeting')\n\n@kn.node\ndef hello(name='world'):\n    return f'hi {name}'\n",
    "%kailash export greeting.yaml",
    "path = kn.export('greeting.py')\nprint(path)",
    "%kailash run",
)


def test_run_takes_workflow_and_params_and_skips_exports(tmp_path, store):
    notebook = write(tmp_path / "two.ipynb", *TWO_WORKFLOWS)

    completed = run_cli(
        "run", str(notebook), "--param", "hello.name=nb", "--json", "--no-history", env=store
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["results"] == {"hello": {"result": "hi nb"}}
    assert "skipped cell 4: %kailash export greeting.yaml" in completed.stderr
    assert "skipped cell 5: path = kn.export('greeting.py')" in completed.stderr
    assert "skipped cell 5: print(path)" in completed.stderr
    assert not (tmp_path / "greeting.yaml").exists()
    assert not (tmp_path / "greeting.py").exists()

    completed = run_cli(
        "run", str(notebook), "--workflow", "prices", "--param", "qty=4", "--json", env=store
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["results"] == {"price": {"result": 10.0}}


def test_run_notebook_refuses_unknown_workflows_and_inputs(tmp_path, store):
    notebook = write(tmp_path / "two.ipynb", *TWO_WORKFLOWS)

    completed = run_cli("run", str(notebook), "--workflow", "price", env=store)
    assert completed.returncode == 1
    assert one_error_line(completed.stderr) == (
        "error: two.ipynb defines no workflow 'price' (did you mean 'prices'?); "
        "its workflows: prices, greeting"
    )

    completed = run_cli("run", str(notebook), "--param", "hello.nam=x", env=store)
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1] == (
        "error: --param hello.nam: node 'hello' (PythonCodeNode) has no input 'nam' "
        "(did you mean 'name'?); its inputs: name"
    )


def test_run_notebook_reports_a_failing_cell_as_jupyter_would(tmp_path, store):
    notebook = write(tmp_path / "bad.ipynb", "import kailash_nb as kn", "1 / 0")
    completed = run_cli("run", str(notebook), env=store)
    assert completed.returncode == 1
    # One error line, then the cell's own output (its frames only, as Jupyter shows it).
    assert completed.stderr.startswith(
        "error: bad.ipynb: cell 2 failed: ZeroDivisionError: division by zero\n"
    )
    assert "----> 1 1 / 0" in completed.stderr
    assert "kailash_nb" not in completed.stderr


def test_cell_filter_skips_exports():
    cells = CellFilter({"kn": kn, "export": kn.export})

    def plan(source: str) -> str | None:
        return cells.plan(source, source).code

    assert plan("get_ipython().run_line_magic('kailash', 'export mine.yaml')") is None
    assert plan("kn.export('mine.yaml')") is None
    assert plan("written = export('mine.py')\nx = 1") == "x = 1"
    assert plan("print(written)") is None
    assert plan("get_ipython().run_line_magic('kailash', 'workflow w')") is not None


def test_serve_does_not_rewrite_exported_files(tmp_path, store):
    notebook = write(
        tmp_path / "pub.ipynb",
        *TWO_WORKFLOWS[:4],
        "%kailash publish greeting",
    )
    exported = tmp_path / "greeting.yaml"
    exported.write_text("mine\n")
    port = free_port()
    with serve_cli([str(notebook), "--port", str(port)], store, port) as (_, logs):
        pass
    stderr = logs[0]
    assert exported.read_text() == "mine\n"
    assert "skipped cell 4: %kailash export greeting.yaml" in stderr
