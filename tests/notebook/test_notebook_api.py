"""The plain notebook API (``import kailash_nb as kn``): defining, wiring, running,
node states, displays, deterministic mode, secrets and export."""

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kailash_nb as kn
from kailash_nb import LocalRuntime, Workflow
from kailash_nb.notebook import display
from kailash_nb.notebook.errors import ExportError, NotebookError
from kailash_nb.notebook.failures import NodeRunError
from kailash_nb.notebook.view import NODE_STATES, WorkflowView
from kailash_nb.sdk_exceptions import KailashException, WorkflowValidationError
from kailash_nb.workflow.serialization import load_yaml

THRESHOLD = 1


@pytest.fixture(autouse=True)
def fresh_notebook(monkeypatch):
    monkeypatch.delenv(display.DETERMINISTIC_ENV, raising=False)
    kn.reset()
    yield
    kn.reset()


def _etl():
    kn.workflow("etl")

    @kn.node
    def load(n=4):
        return [{"id": i, "amount": i * 10} for i in range(n)]

    @kn.node
    def clean(load, minimum=THRESHOLD):
        return [row for row in load if row["amount"] >= minimum]

    @kn.node("report", inputs={"rows": "clean"}, output="summary")
    def summarize(rows):
        return {"count": len(rows), "total": sum(row["amount"] for row in rows)}


# -- defining and wiring ------------------------------------------------------------------------
def test_kn_workflow_selects_and_creates_while_the_subpackage_still_works():
    import kailash_nb.workflow.builder  # noqa: F401 - binds the subpackage first

    first = kn.workflow("one")
    assert kn.current() is first and first.name == "one"
    assert kn.workflow("two") is not first
    assert kn.workflow("one") is first
    assert kn.workflow.WorkflowBuilder is kn.WorkflowBuilder
    assert repr(first) == "Workflow 'one' (0 nodes)"


def test_kn_workflow_is_callable_in_a_fresh_interpreter():
    code = (
        "import kailash_nb as kn; w = kn.workflow('fresh'); "
        "print(w.name, kn.workflow.WorkflowBuilder.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["fresh", "WorkflowBuilder"]


def test_nodes_default_to_a_default_workflow():
    @kn.node
    def lonely():
        return 1

    assert kn.current().name == "default"
    assert kn.run().value("lonely") == 1


def test_decorator_forms_return_the_function():
    def plain():
        return 1

    assert kn.node(plain) is plain
    assert plain() == 1

    @kn.node()
    def bare():
        return 2

    @kn.node("named")
    def other():
        return 3

    assert kn.current().node_ids() == ["plain", "bare", "named"]
    assert kn.run().value("named") == 3


def test_parameters_named_after_nodes_are_edges_others_are_workflow_parameters():
    _etl()
    session = kn.current()
    assert session.node_ids() == ["load", "clean", "report"]
    assert session.edges() == [
        ("load", "clean", "result -> load"),
        ("clean", "report", "result -> rows"),
    ]
    result = kn.run(minimum=15)
    assert result.value("clean") == [{"id": 2, "amount": 20}, {"id": 3, "amount": 30}]
    assert result["report"] == {"summary": {"count": 2, "total": 50}}
    assert result.value("report") == {"count": 2, "total": 50}


def test_a_node_defined_later_is_wired_when_it_appears():
    @kn.node
    def total(numbers):
        return sum(numbers)

    assert kn.current().edges() == []
    with pytest.raises(WorkflowValidationError, match="'numbers'"):
        kn.run()  # a required workflow parameter until a node named `numbers` exists
    assert kn.run(numbers=[1, 2]).value("total") == 3

    @kn.node
    def numbers():
        return [5, 6]

    assert kn.current().edges() == [("numbers", "total", "result -> numbers")]
    assert kn.run().value("total") == 11


def test_output_names_the_primary_output():
    _etl()

    @kn.node(inputs={"report": "report"})
    def headline(report):
        return f"{report['count']} rows"

    assert ("report", "headline", "summary -> report") in kn.current().edges()
    assert kn.run().value("headline") == "3 rows"
    with pytest.raises(NotebookError, match=r"publishes its value as 'summary'.*report\.summary"):
        kn.connect("report.result -> headline.report")


def test_connect_and_disconnect():
    @kn.node
    def source():
        return 5

    @kn.node
    def sink(value=0):
        return value + 1

    assert kn.run().value("sink") == 1
    kn.connect("source.result -> sink.value")
    kn.connect("source -> sink.value")  # the same connection again: no-op
    assert kn.current().edges() == [("source", "sink", "result -> value")]
    assert kn.current().node_info("sink")["state"] == "stale"
    assert kn.run().value("sink") == 6
    kn.disconnect("source.result -> sink.value")
    assert kn.run().value("sink") == 1
    with pytest.raises(NotebookError, match="no connection"):
        kn.disconnect("source.result -> sink.value")


def test_redefining_replaces_the_node_and_marks_downstream_stale():
    _etl()
    kn.run()
    session = kn.current()
    assert {session.node_info(n)["state"] for n in session.node_ids()} == {"completed"}

    _etl()  # every cell re-run unchanged: nothing turns stale, nothing is duplicated
    assert session.node_ids() == ["load", "clean", "report"]
    assert session.node_info("report")["state"] == "completed"

    @kn.node
    def clean(load, minimum=THRESHOLD):  # the cell of `clean`, edited and re-run
        return [row for row in load if row["amount"] > minimum]

    assert session.node_ids() == ["load", "clean", "report"]
    states = {n: session.node_info(n)["state"] for n in session.node_ids()}
    assert states == {"load": "completed", "clean": "stale", "report": "stale"}
    result = kn.run()
    assert result.states == {"load": "cached", "clean": "completed", "report": "completed"}


def test_remove_drops_the_node_and_leaves_named_inputs_dangling():
    _etl()
    kn.run()
    kn.remove("clean")
    assert kn.current().node_ids() == ["load", "report"]
    assert kn.current().node_info("report")["state"] == "stale"
    with pytest.raises(NotebookError, match="takes input 'rows' from node 'clean'"):
        kn.run()
    assert kn.run("load").value("load")[0] == {"id": 0, "amount": 0}


def test_typed_nodes_with_config_and_inputs(tmp_path):
    csv = tmp_path / "orders.csv"
    csv.write_text("id,amount\n1,5\n2,7\n")
    kn.add_node("CSVReaderNode", "orders", {"file_path": str(csv)}, output="data")

    @kn.node
    def total(orders):
        return sum(int(row["amount"]) for row in orders)

    assert kn.run().value("total") == 12
    assert kn.current().node_info("orders")["type"] == "CSVReaderNode"


def test_did_you_mean_errors():
    _etl()
    with pytest.raises(NotebookError, match=r"no node 'claen'.*did you mean 'clean'"):
        kn.remove("claen")
    with pytest.raises(NotebookError, match=r"did you mean 'clean'"):
        kn.run("claen")
    with pytest.raises(NotebookError, match=r"did you mean 'load'"):
        kn.connect("lod.result -> clean.minimum")
    with pytest.raises(NotebookError, match=r"did you mean 'clean'"):
        kn.invalidate("clea")
    with pytest.raises(NotebookError, match=r"input 'rows' comes from node 'laod'.*'load'"):
        kn.node("other", inputs={"rows": "laod"})(lambda rows: rows)
    with pytest.raises(NotebookError, match=r"not a parameter.*did you mean 'rows'"):
        kn.node("other", inputs={"rowz": "load"})(lambda rows: rows)
    with pytest.raises(WorkflowValidationError, match=r"did you mean 'minimum'"):
        kn.run(minimun=3)
    with pytest.raises(KailashException, match=r"did you mean 'CSVReaderNode'"):
        kn.add_node("CSVReader", "reader", {"file_path": "x.csv"})
    assert kn.current().node_ids() == ["load", "clean", "report"]


def test_a_definition_that_breaks_the_workflow_is_refused_and_the_old_one_kept():
    @kn.node
    def first(second=None):
        return 1

    with pytest.raises(WorkflowValidationError, match="cycle"):

        @kn.node
        def second(first):
            return 2

    assert kn.current().node_ids() == ["first"]
    with pytest.raises(KailashException, match=r"\*args"):
        kn.node("star")(lambda *values: values)


def test_partial_run_needs_only_the_upstream_and_its_parameters():
    _etl()

    @kn.node
    def unrelated(flag):
        return flag

    result = kn.run("clean", minimum=25)
    assert set(result.states) == {"load", "clean"}
    assert result.value("clean") == [{"id": 3, "amount": 30}]
    assert kn.current().node_info("report")["state"] == "idle"


def test_run_async():
    _etl()
    result = asyncio.run(kn.run_async(minimum=25))
    assert result.value("report") == {"count": 1, "total": 30}


def test_reserved_names_pass_through_parameters():
    @kn.node
    def echo(no_cache=False):
        return no_cache

    assert kn.run(parameters={"no_cache": "yes"}).value("echo") == "yes"


# -- the WorkflowView protocol and node states ---------------------------------------------------
def test_session_implements_the_view_protocol_and_tracks_states():
    _etl()
    session = kn.current()
    view: WorkflowView = session
    assert view.name == "etl" and view.events is session.events
    info = session.node_info("clean")
    assert info["state"] == "idle" and info["duration"] is None
    assert info["parameters"] == {"load": "<- load.result", "minimum": "1"}
    assert re.fullmatch(r"test_notebook_api\.py:\d+", info["cell"])

    seen = []
    with session.events.subscribe(lambda e: seen.append((e.node_id, e.state)), runs=False):
        kn.run(minimum=15)
    assert ("clean", "started") in seen and ("clean", "completed") in seen
    info = session.node_info("clean")
    assert info["state"] == "completed" and info["state"] in NODE_STATES
    assert info["duration"] is not None and info["duration"] >= 0
    assert info["parameters"]["minimum"] == "15"
    assert info["output_preview"].startswith("[{'id': 2, 'amount': 20}")
    assert session.node_info("report")["output_preview"] == "{'count': 2, 'total': 50}"


def test_listeners_hear_changes_outside_runs():
    calls = []
    session = kn.current()
    remove = session.add_listener(lambda: calls.append(len(session.node_ids())))
    kn.node("a")(lambda: 1)
    kn.run()
    kn.remove("a")
    remove()
    kn.node("b")(lambda: 1)
    assert calls == [1, 1, 0]


def test_workflows_listeners_hear_creation_selection_and_reset(caplog):
    from kailash_nb.notebook import session as session_module

    seen = []

    def failing():
        raise RuntimeError("listener bug")

    remove = session_module.add_workflows_listener(
        lambda: seen.append((list(session_module.workflows()), session_module.selected()))
    )
    remove_failing = session_module.add_workflows_listener(failing)
    try:
        one = kn.workflow("one")
        kn.workflow("one")  # already current: nothing changed
        kn.node("a")(lambda: 1)  # a change inside the workflow: its own listeners hear it
        two = kn.workflow("two")
        kn.workflow("one")
        kn.reset()
        default = kn.current()  # creates "default"
    finally:
        remove()
        remove_failing()
    kn.workflow("unheard")
    assert seen == [
        (["one"], one),
        (["one", "two"], two),
        (["one", "two"], one),
        ([], None),
        (["default"], default),
    ]
    failures = [r for r in caplog.records if "workflows listener" in r.getMessage()]
    assert len(failures) == 5 and all(r.exc_info is not None for r in failures)
    assert session_module.find("unheard") is kn.current()
    with pytest.raises(NotebookError, match=r"no notebook workflow named 'unhaerd' \(did you mean"):
        session_module.find("unhaerd")


def test_running_states_are_visible_to_the_node_itself():
    session = kn.current()

    @kn.node
    def probe():
        return session.node_info("probe")["state"]

    assert kn.run().value("probe") == "running"


def test_secrets_are_masked_in_node_info_and_displays():
    @kn.node
    def fetch(api_token="abc-default", url="https://example.test"):
        return {"ok": True}

    kn.add_node(
        "PythonCodeNode", "login", {"code": "result = len(password)", "password": "hunter2"}
    )
    result = kn.run(api_token="s3cret-value")
    info = kn.current().node_info("fetch")
    assert info["parameters"] == {"api_token": "***", "url": "'https://example.test'"}
    assert kn.current().node_info("login")["parameters"]["password"] == "***"
    for text in (repr(kn.status()), kn.status()._repr_html_(), repr(info)):
        for secret in ("s3cret", "abc-default", "hunter2"):
            assert secret not in text
    assert result.value("fetch") == {"ok": True}


# -- errors ---------------------------------------------------------------------------------------
def test_a_failing_node_names_itself_and_its_cell():
    @kn.node
    def broken(x=0):
        return 1 / x

    with pytest.raises(NodeRunError) as caught:
        kn.run()
    error = caught.value
    assert error.node_id == "broken"
    assert re.match(
        r"node 'broken' \(defined in test_notebook_api\.py:\d+\) failed: "
        r"ZeroDivisionError: division by zero$",
        str(error),
    )

    @kn.node
    def after(broken):
        return broken

    with pytest.raises(NodeRunError) as caught:
        kn.run()
    error = caught.value
    assert error.result.states == {"broken": "failed", "after": "not run"}
    assert isinstance(error.__cause__, ZeroDivisionError)
    rendered = "\n".join(error._render_traceback_())
    assert "NodeRunError: node 'broken'" in rendered and "return 1 / x" in rendered
    assert "kailash_nb/runtime" not in rendered
    assert kn.current().last_result is error.result
    assert "ZeroDivisionError: division by zero (node defined in" in repr(error.result)


def test_an_interrupted_run_leaves_no_node_running():
    @kn.node
    def stop():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        kn.run()
    assert kn.current().node_info("stop")["state"] == "idle"


def test_empty_workflow_and_missing_widget_give_clear_errors(monkeypatch):
    with pytest.raises(NotebookError, match="has no nodes yet"):
        kn.run()
    monkeypatch.setitem(sys.modules, "kailash_nb.notebook.widget", None)
    with pytest.raises(NotebookError, match=r"kailash-nb\[notebook\]"):
        kn.show()
    assert NotebookError("short")._render_traceback_() == ["NotebookError: short"]


def test_show_returns_the_graph_widget():
    widget_module = pytest.importorskip(
        "kailash_nb.notebook.widget", reason="the graph widget is not installed"
    )
    _etl()
    widget = kn.show()
    try:
        assert isinstance(widget, widget_module.GraphWidget)
    finally:
        widget.close()


# -- displays -------------------------------------------------------------------------------------
def test_run_result_displays_with_pandas():
    pytest.importorskip("pandas")
    _etl()
    result = kn.run()
    bundle = result._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/html"}
    assert 'class="dataframe' in bundle["text/html"]
    assert result.run_id in bundle["text/html"] and result.run_id in bundle["text/plain"]
    frame = result.to_frame()
    assert list(frame.columns) == ["node", "state", "duration", "output"]
    assert list(frame["node"]) == ["load", "clean", "report"]
    assert "dataframe" in kn.status()._repr_html_()


def test_run_result_displays_without_pandas(monkeypatch):
    monkeypatch.setattr(display, "_load_pandas", lambda: None)
    _etl()
    result = kn.run()
    html = result._repr_html_()
    assert '<table class="kailash-nb-table">' in html and "dataframe" not in html
    assert "<td>report</td>" in html and "&#x27;count&#x27;: 3" in html
    with pytest.raises(NotebookError, match="needs pandas"):
        result.to_frame()
    assert "<table" in kn.status()._repr_html_()


def test_plain_text_is_deterministic_in_deterministic_mode():
    _etl()
    first = kn.run(no_cache=True)
    assert first.run_id in repr(first) and "<duration>" not in repr(first)
    kn.deterministic(True)
    second = kn.run(no_cache=True)
    text = repr(second)
    assert text == repr(kn.run(no_cache=True))
    assert second.run_id not in text and "<run id>" in text
    assert text == (
        "Run of workflow 'etl' (run <run id>)\n"
        "node    state      duration    output\n"
        "load    completed  <duration>  "
        "[{'id': 0, 'amount': 0}, {'id': 1, 'amount': 10}, {'id': 2, 'amount': 20}, {'...\n"
        "clean   completed  <duration>  "
        "[{'id': 1, 'amount': 10}, {'id': 2, 'amount': 20}, {'id': 3, 'amount': 30}]\n"
        "report  completed  <duration>  {'count': 3, 'total': 60}"
    )
    assert "&lt;duration&gt;" in second._repr_html_()
    assert re.search(r"0x[0-9a-f]{6}", repr(kn.status())) is None
    kn.deterministic(False)
    assert "<run id>" not in repr(kn.run())


def test_deterministic_mode_from_the_environment(monkeypatch):
    monkeypatch.setenv(display.DETERMINISTIC_ENV, "1")
    _etl()
    assert "<run id>" in repr(kn.run())
    kn.deterministic(False)
    assert "<run id>" not in repr(kn.run())


def test_previews_hide_memory_addresses():
    class Opaque:
        pass

    assert "0x..." in display.preview(Opaque())
    assert len(display.preview(list(range(10_000)))) <= 80


# -- export ---------------------------------------------------------------------------------------
def test_yaml_export_builds_and_runs_with_the_same_results(tmp_path):
    _etl()

    @kn.node
    async def ratio(report, scale: float = 1.0):
        return report["total"] / report["count"] * scale

    expected = dict(kn.run(scale="2"))
    path = kn.export(tmp_path / "flow.yaml")
    definition = load_yaml(path.read_text())
    assert definition["nodes"]["clean"]["config"]["minimum"] == 1
    assert "THRESHOLD = 1" in definition["nodes"]["clean"]["config"]["code"] or (
        "minimum=minimum" in definition["nodes"]["clean"]["config"]["code"]
    )
    assert definition["nodes"]["ratio"]["node_type"] == "AsyncPythonCodeNode"
    workflow = Workflow.from_dict(definition)
    results, _ = LocalRuntime().execute(workflow, {"scale": "2"})
    assert results == expected


def test_json_and_script_exports(tmp_path):
    _etl()
    expected = kn.run(minimum=15)["report"]
    assert "nodes" in kn.export(tmp_path / "flow.json").read_text()
    script = kn.export(tmp_path / "flow.py")
    text = script.read_text()
    assert "function_node(summarize, output='summary')" in text
    assert "@kn.node" not in text
    out = subprocess.run(
        [sys.executable, str(script), "minimum=15"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert f"report: {expected!r}" in out.stdout


def test_export_refuses_what_a_file_cannot_carry(tmp_path):
    lock = __import__("threading").Lock()

    @kn.node
    def guarded():
        with lock:
            return 1

    with pytest.raises(ExportError, match=r"global 'lock' \(lock\)"):
        kn.export(tmp_path / "flow.yaml")
    with pytest.raises(ExportError, match=r"use a \.yaml"):
        kn.export(tmp_path / "flow.txt")
    kn.remove("guarded")
    kn.node("anonymous")(lambda: 1)
    with pytest.raises(ExportError, match="only functions defined with 'def'"):
        kn.export(tmp_path / "flow.py")
    assert not (tmp_path / "flow.py").exists() and not Path(tmp_path / "flow.yaml").exists()


def test_a_run_result_says_how_the_run_ended():
    kn.workflow("ended")

    @kn.node
    def ok():
        return 1

    assert kn.run().status == "completed" and kn.current().run_status() == "completed"

    @kn.node
    def leaf(ok):
        return ok / 0

    with pytest.raises(kn.NodeRunError) as info:
        kn.run()
    assert info.value.result.status == "failed"
    assert kn.current().run_status() == "failed"
    assert repr(info.value.result).splitlines()[0].endswith(": failed")
