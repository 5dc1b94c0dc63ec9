"""A failing node keeps its exception and shows the user's frames, in kn.run() and the widget."""

import pytest

import kailash_nb as kn
from kailash_nb.notebook.failures import user_traceback


@pytest.fixture(autouse=True)
def fresh(shell):
    kn.reset()
    shell.reset(new_session=True)
    yield
    kn.reset()


def run_cell(shell, source):
    """Run ``source`` as the next notebook cell; return its result and its ``In [n]``."""
    result = shell.run_cell(source, store_history=True)
    return result, f"In [{result.execution_count}]"


LEAF = """import kailash_nb as kn

@kn.node
def load():
    return [1, 2]

@kn.node
def report(load, api_token="unused"):
    total = sum(load)
    raise ValueError(f"cannot send {total} with token {api_token}")
"""


def test_a_failing_leaf_node_shows_its_cell_and_line_in_kn_run(shell, capsys):
    _, defined = run_cell(shell, LEAF)
    capsys.readouterr()
    result, _ = run_cell(shell, "kn.run(api_token='tok-s3cret-value')")
    error = result.error_in_exec
    assert isinstance(error, kn.NodeRunError)
    # The node's own exception is kept, with its traceback.
    assert isinstance(error.__cause__, ValueError) and error.__cause__.__traceback__ is not None
    (outcome,) = [o for o in error.result.outcomes if o.state == "failed"]
    assert outcome.exception is error.__cause__
    expected = [
        f"Cell {defined}, line 10, in report",
        '    raise ValueError(f"cannot send {total} with token {api_token}")',
        "ValueError: cannot send 3 with token <redacted>",
    ]
    assert outcome.traceback.splitlines() == expected
    shown = capsys.readouterr().out
    assert shown.splitlines() == [
        f"NodeRunError: node 'report' (defined in {defined}) failed: "
        "ValueError: cannot send 3 with token <redacted>",
        f"Traceback of node 'report' (defined in {defined}):",
        *expected,
    ]
    assert "tok-s3cret-value" not in shown and "kailash_nb" not in shown
    info = kn.current().node_info("report")
    assert info["traceback"] == outcome.traceback
    assert kn.current().node_info("load")["traceback"] is None


def test_the_traceback_goes_to_the_widget_and_clears_on_success(shell):
    widget_module = pytest.importorskip(
        "kailash_nb.notebook.widget", reason="the graph widget is not installed"
    )
    _, defined = run_cell(
        shell, "import kailash_nb as kn\n\n@kn.node\ndef f(x=0):\n    return 1 / x\n"
    )
    run_cell(shell, "kn.run()")
    widget = widget_module.GraphWidget(kn.current())
    try:
        widget.select("f")
        details = widget.details
    finally:
        widget.close()
    assert details["traceback"] == (
        f"Cell {defined}, line 5, in f\n    return 1 / x\nZeroDivisionError: division by zero"
    )
    run_cell(shell, "kn.run(x=2)")
    assert kn.current().node_info("f")["traceback"] is None


def test_a_failure_deep_in_helpers_keeps_every_user_frame_and_drops_the_sdk(shell):
    run_cell(shell, "def helper(rows):\n    return rows['missing']\n")
    _, defined = run_cell(
        shell,
        "import kailash_nb as kn\n\n@kn.node\ndef g(rows=None):\n    return helper(rows or {})\n",
    )
    result, _ = run_cell(shell, "kn.run()")
    text = result.error_in_exec.result.outcomes[0].traceback
    lines = text.splitlines()
    assert lines[0] == f"Cell {defined}, line 5, in g"
    assert lines[2].startswith("Cell In [") and lines[2].endswith("line 2, in helper")
    assert lines[-1] == "KeyError: 'missing'"
    assert "kailash_nb" not in text


def test_user_traceback_outside_a_notebook_names_the_file():
    def broken():
        raise RuntimeError("password=hunter22 rejected")

    try:
        broken()
    except RuntimeError as exc:
        text = user_traceback(exc, {"password": "hunter22"})
    lines = text.splitlines()
    assert lines[-3].startswith('File "') and "test_tracebacks.py" in lines[-3]
    assert lines[-3].endswith("in broken")
    assert lines[-1] == "RuntimeError: password=<redacted> rejected"
