"""The ``%kailash`` magics, in a real in-process IPython shell (no kernel)."""

import pytest
from _calls import Calls
from IPython.core.error import UsageError

import kailash_nb as kn
from kailash_nb.notebook.display import RunResult, WorkflowStatus
from kailash_nb.workflow.serialization import load_yaml

LOAD = """%%kailash node
def load(n=3):
    calls.append("load")
    return list(range(n))
"""
DOUBLE = """%%kailash node
def double(load):
    calls.append("double")
    return [value * 2 for value in load]
"""
TOTAL = """%%kailash node total --in values=double
def total(values, offset=0):
    calls.append("total")
    return sum(values) + offset
"""


@pytest.fixture(autouse=True)
def fresh(shell):
    kn.reset()
    shell.reset(new_session=True)
    shell.user_ns["calls"] = Calls()
    yield
    kn.reset()


def cell(shell, source):
    """Run ``source`` as the next notebook cell; fail on an unexpected error."""
    result = shell.run_cell(source, store_history=True)
    if result.error_in_exec is not None and not isinstance(result.error_in_exec, UsageError):
        raise result.error_in_exec
    return result


def usage_error(shell, capsys, source):
    """Run a cell expected to fail with a short UsageError; return its message."""
    capsys.readouterr()
    result = shell.run_cell(source, store_history=True)
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    error = capsys.readouterr().err
    assert error.startswith("UsageError: ") and "Traceback" not in error
    return str(result.error_in_exec)


def pipeline(shell):
    """Define load, double and total; return the cell labels the notebook shows."""
    return [shown(cell(shell, source)) for source in (LOAD, DOUBLE, TOTAL)]


def shown(result):
    """The ``In [n]`` label the notebook shows for the cell that gave ``result``."""
    return f"In [{result.execution_count}]"


def test_node_cells_define_functions_and_nodes(shell):
    cells = pipeline(shell)
    session = kn.current()
    assert session.node_ids() == ["load", "double", "total"]
    assert session.edges() == [
        ("load", "double", "result -> load"),
        ("double", "total", "result -> values"),
    ]
    assert shell.user_ns["load"](2) == [0, 1]  # still an ordinary function
    assert [session.node_info(n)["cell"] for n in session.node_ids()] == cells
    assert len(set(cells)) == 3
    result = cell(shell, "%kailash run --param offset=1").result
    assert isinstance(result, RunResult) and result.value("total") == 7


def test_rerunning_an_unchanged_cell_executes_nothing(shell):
    pipeline(shell)
    cell(shell, "%kailash run")
    calls = shell.user_ns["calls"]
    assert sorted(calls) == ["double", "load", "total"]
    calls.clear()
    pipeline(shell)  # every cell re-run as it was
    result = cell(shell, "%kailash run").result
    assert calls == []
    assert set(result.states.values()) == {"cached"}
    assert kn.current().node_ids() == ["load", "double", "total"]


def test_editing_one_node_reruns_it_and_its_downstream_only(shell):
    pipeline(shell)
    cell(shell, "%kailash run")
    calls = shell.user_ns["calls"]
    calls.clear()
    edited = shown(cell(shell, DOUBLE.replace("value * 2", "value * 3")))
    session = kn.current()
    assert session.node_ids() == ["load", "double", "total"]  # replaced, not duplicated
    assert {n: session.node_info(n)["state"] for n in session.node_ids()} == {
        "load": "completed",
        "double": "stale",
        "total": "stale",
    }
    assert session.node_info("double")["cell"] == edited
    result = cell(shell, "%kailash run").result
    assert sorted(calls) == ["double", "total"]
    assert result.states == {"load": "cached", "double": "completed", "total": "completed"}
    assert result.value("total") == 9


def test_run_one_node_no_cache_status_and_remove(shell):
    pipeline(shell)
    calls = shell.user_ns["calls"]
    result = cell(shell, "%kailash run double --param n=2").result
    assert set(result.states) == {"load", "double"} and calls == ["load", "double"]
    calls.clear()
    cell(shell, "%kailash run double --param n=2 --no-cache")
    assert calls == ["load", "double"]
    status = cell(shell, "%kailash status").result
    assert isinstance(status, WorkflowStatus)
    assert "total   PythonCodeNode  idle" in repr(status)
    cell(shell, "%kailash rm total")
    assert kn.current().node_ids() == ["load", "double"]
    cell(shell, "%kailash invalidate load")
    assert kn.current().node_info("double")["state"] == "stale"


def test_typed_node_from_yaml_config(shell, tmp_path):
    csv = tmp_path / "orders.csv"
    csv.write_text("id,amount\n1,5\n2,7\n")
    defined = cell(
        shell,
        f"%%kailash node orders --type CSVReaderNode --out data\nfile_path: {csv}\n",
    )
    cell(
        shell,
        "%%kailash node amounts --type PythonCodeNode --in rows=orders\n"
        "code: |\n  result = [int(row['amount']) for row in rows]\n",
    )
    cell(shell, "%%kailash node\ndef total(amounts):\n    return sum(amounts)\n")
    session = kn.current()
    assert session.node_info("orders")["type"] == "CSVReaderNode"
    assert session.node_info("orders")["cell"] == shown(defined)
    assert cell(shell, "%kailash run").result.value("total") == 12


def test_connect_and_workflows(shell):
    cell(shell, "%kailash workflow first")
    cell(shell, "%%kailash node\ndef source():\n    return 4\n")
    cell(shell, "%%kailash node\ndef sink(value=0):\n    return value + 1\n")
    cell(shell, "%kailash connect source -> sink.value")
    assert cell(shell, "%kailash run").result.value("sink") == 5
    cell(shell, "%kailash disconnect source.result -> sink.value")
    assert cell(shell, "%kailash run").result.value("sink") == 1
    cell(shell, "%kailash workflow second")
    assert kn.current().name == "second" and kn.current().node_ids() == []
    assert kn.workflow("first").node_ids() == ["source", "sink"]


def test_cell_with_several_functions_names_the_node(shell, capsys):
    body = "def helper(x):\n    return x + 1\n\ndef main_step(x=1):\n    return helper(x)\n"
    message = usage_error(shell, capsys, "%%kailash node\n" + body)
    assert "put the node's function name after 'node'" in message
    cell(shell, "%%kailash node main_step\n" + body)
    assert kn.current().node_ids() == ["main_step"]
    cell(shell, "%%kailash node step --out value\ndef compute(x=1):\n    return x + 1\n")
    assert kn.run("step")["step"] == {"value": 2}


def test_mistakes_are_one_line_usage_errors(shell, capsys):
    pipeline(shell)
    assert "did you mean 'run'" in usage_error(shell, capsys, "%kailash rnu")
    assert "did you mean 'double'" in usage_error(shell, capsys, "%kailash rm doubel")
    assert "did you mean 'load'" in usage_error(shell, capsys, "%kailash run laod")
    assert "did you mean 'load'" in usage_error(
        shell, capsys, "%kailash connect lod.result -> total.offset"
    )
    assert "did you mean 'offset'" in usage_error(shell, capsys, "%kailash run --param ofset=1")
    assert "did you mean 'CSVReaderNode'" in usage_error(
        shell, capsys, "%%kailash node r --type CSVReader\nfile_path: x.csv\n"
    )
    assert "comes from node 'dubble'" in usage_error(
        shell, capsys, "%%kailash node t2 --in values=dubble\ndef t2(values):\n    return 1\n"
    )
    assert "must define the node's function" in usage_error(
        shell, capsys, "%%kailash node\nx = 1\n"
    )
    assert "needs a cell body" in usage_error(shell, capsys, "%kailash node load")
    assert kn.current().node_ids() == ["load", "double", "total"]


def test_a_failing_node_reports_itself_and_its_cell(shell, capsys):
    defined = shown(cell(shell, "%%kailash node\ndef broken(x=0):\n    return 1 / x\n"))
    capsys.readouterr()
    result = shell.run_cell("%kailash run", store_history=True)
    assert isinstance(result.error_in_exec, kn.NodeRunError)
    assert str(result.error_in_exec) == (
        f"node 'broken' (defined in {defined}) failed: ZeroDivisionError: division by zero"
    )
    shown_error = capsys.readouterr().out.splitlines()
    assert shown_error == [
        f"NodeRunError: node 'broken' (defined in {defined}) failed: "
        "ZeroDivisionError: division by zero",
        f"Traceback of node 'broken' (defined in {defined}):",
        f"Cell {defined}, line 2, in broken",
        "    return 1 / x",
        "ZeroDivisionError: division by zero",
    ]
    assert kn.current().node_info("broken")["state"] == "failed"


def test_help_export_and_display(shell, capsys, tmp_path):
    cell(shell, "%kailash --help")
    assert "usage: %kailash COMMAND" in capsys.readouterr().out
    pipeline(shell)
    kn.deterministic(True)
    result = cell(shell, "%kailash run").result
    data, _ = shell.display_formatter.format(result)
    assert data["text/plain"].startswith("Run of workflow 'default' (run <run id>)")
    assert "text/html" in data
    target = tmp_path / "flow.yaml"
    assert "global 'calls' (Calls)" in usage_error(shell, capsys, f"%kailash export {target}")
    cell(shell, "%kailash workflow portable")
    cell(shell, "%%kailash node\ndef total(values=(1, 2), offset=0):\n    return sum(values)\n")
    cell(shell, f"%kailash export {target}")
    assert f"Exported workflow 'portable' to {target}" in capsys.readouterr().out
    code = load_yaml(target.read_text())["nodes"]["total"]["config"]["code"]
    assert code.endswith("result = total(values=values, offset=offset)\n")


def test_show_returns_the_widget(shell):
    widget_module = pytest.importorskip(
        "kailash_nb.notebook.widget", reason="the graph widget is not installed"
    )
    pipeline(shell)
    widget = cell(shell, "%kailash show").result
    try:
        assert isinstance(widget, widget_module.GraphWidget)
    finally:
        widget.close()


def test_unload_removes_the_magic(shell):
    cell(shell, "%unload_ext kailash_nb")
    try:
        assert "kailash" not in shell.magics_manager.magics["line"]
        assert "kailash" not in shell.magics_manager.magics["cell"]
    finally:
        cell(shell, "%load_ext kailash_nb")
    assert "kailash" in shell.magics_manager.magics["line"]


def test_cell_labels_ignore_where_the_shell_counter_points_while_a_cell_runs(shell, capsys):
    # IPython releases differ on what execution_count holds while a cell runs; move it
    # far off inside the cell: labels still name the cell the notebook shows.
    source = (
        "get_ipython().execution_count += 40\n"
        "get_ipython().run_cell_magic('kailash', 'node', "
        "'def broken(x=0):\\n    return 1 / x\\n')\n"
    )
    defined = shown(cell(shell, source))
    assert kn.current().node_info("broken")["cell"] == defined
    status_row = repr(cell(shell, "%kailash status").result).splitlines()[-1]
    assert status_row.split()[:2] == ["broken", "PythonCodeNode"] and defined in status_row
    capsys.readouterr()
    message = str(shell.run_cell("%kailash run", store_history=True).error_in_exec)
    assert f"(defined in {defined})" in message
    assert f"Cell {defined}, line 2, in broken" in capsys.readouterr().out
