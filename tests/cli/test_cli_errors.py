"""Every ``kailash-nb`` error is one line with a documented exit code, never a
traceback; unknown ``--param`` names are refused as the gateway refuses them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import nbformat
import pytest
import yaml
from _run_cli import cli_env, one_error_line, run_cli
from nbformat.v4 import new_code_cell, new_notebook

from kailash_nb.cli import EXIT_BROKEN_PIPE, EXIT_ERROR, EXIT_USAGE, main

TOTALS = {
    "name": "totals",
    "nodes": {
        "load": {"node_type": "PythonCodeNode", "config": {"code": "result = list(range(n))"}},
        "report": {"node_type": "PythonCodeNode", "config": {"code": "result = sum(rows)"}},
    },
    "connections": [
        {
            "source_node": "load",
            "source_output": "result",
            "target_node": "report",
            "target_input": "rows",
        }
    ],
}


@pytest.fixture
def flow(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KAILASH_NB_DATABASE_URL", f"sqlite:///{tmp_path / 'runs.db'}")
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(TOTALS))
    return path


@pytest.fixture
def notebook(tmp_path):
    path = tmp_path / "pub.ipynb"
    cells = [
        new_code_cell("import kailash_nb as kn\nkn.workflow('w')"),
        new_code_cell("@kn.node\ndef a(x=1):\n    return x * 2"),
        new_code_cell("%kailash publish w"),
    ]
    nbformat.write(new_notebook(cells=cells), path)
    return path


# -- unknown inputs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            ["load.n=3", "report.lable=hi"],
            "--param report.lable: node 'report' (PythonCodeNode) has no input 'lable'; "
            "its inputs: rows",
        ),
        (
            ["lod.n=3"],
            "--param lod.n: the workflow has no node 'lod' (did you mean 'load'?); "
            "its nodes: load, report",
        ),
        (
            ["m=3"],
            "--param m: no node has an input 'm'; set a node's input with "
            "--param NODE.INPUT=VALUE (inputs: n, rows)",
        ),
        (
            ["load=3"],
            "--param load=3: 'load' is a node; set one of its inputs with --param load.INPUT=VALUE",
        ),
        (
            ["load.code=1"],
            "--param load.code: 'code' is part of the configuration of node 'load', not an "
            "input; change it in the workflow file",
        ),
        (
            [],
            "required inputs are missing: load.n; set them with --param load.n=VALUE",
        ),
    ],
)
def test_unknown_or_missing_params_are_refused_in_cli_syntax(flow, capsys, params, message):
    argv = ["run", str(flow), "--no-history"]
    for item in params:
        argv += ["--param", item]
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing ran
    assert one_error_line(captured.err) == f"error: {message}"
    assert "parameters={" not in captured.err


def test_known_params_still_run(flow, capsys):
    assert main(["run", str(flow), "--param", "load.n=4", "--json", "--no-history"]) == 0
    assert '"result": 6' in capsys.readouterr().out
    assert main(["run", str(flow), "--param", "n=5", "--no-history"]) == 0  # workflow-level
    assert "{'result': 10}" in capsys.readouterr().out


def test_the_gateway_refuses_the_same_typo(flow):
    from kailash_nb.middleware.schemas import check_caller_parameters
    from kailash_nb.sdk_exceptions import WorkflowValidationError
    from kailash_nb.workflow.graph import Workflow

    workflow = Workflow.from_yaml(flow.read_text())
    with pytest.raises(WorkflowValidationError, match=r"parameters\['report'\]\['lable'\]"):
        check_caller_parameters(workflow, {"load": {"n": 3}, "report": {"lable": "hi"}})


def test_workflow_option_is_for_notebooks(flow, capsys):
    assert main(["run", str(flow), "--workflow", "w"]) == EXIT_USAGE
    assert "--workflow selects a workflow of a notebook" in one_error_line(capsys.readouterr().err)


# -- the real entry point -------------------------------------------------------------------


def test_out_of_range_port_is_refused_in_one_line(notebook):
    completed = run_cli("serve", str(notebook), "--port", "99999")
    assert completed.returncode == EXIT_USAGE
    assert one_error_line(completed.stderr) == (
        "kailash-nb serve: error: argument --port: must be between 1 and 65535, got 99999 "
        "(see kailash-nb serve --help)"
    )


def test_short_jwt_secret_is_one_line(notebook):
    completed = run_cli("serve", str(notebook), env=cli_env(KAILASH_NB_JWT_SECRET="short"))
    assert completed.returncode == EXIT_ERROR
    line = one_error_line(completed.stderr)
    assert line.startswith("error: KAILASH_NB_JWT_SECRET is refused: jwt_secret is 5 bytes")


def test_port_in_use_is_one_line(notebook, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = run_cli("serve", str(notebook), "--port", str(port))
    assert completed.returncode == EXIT_ERROR
    assert one_error_line(completed.stderr) == (
        f"error: port {port} on 127.0.0.1 is already in use; stop what listens there or pass --port"
    )


def test_closed_stdout_ends_quietly_with_141():
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head -1` having exited: every write fails
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "kailash_nb.cli", "nodes", "--json"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=cli_env(),
            check=False,
        )
    finally:
        os.close(write_end)
    assert completed.returncode == EXIT_BROKEN_PIPE
    assert completed.stderr == ""


def test_unknown_command_and_bad_values_are_one_line(tmp_path):
    completed = run_cli("bogus")
    assert completed.returncode == EXIT_USAGE
    assert one_error_line(completed.stderr).startswith(
        "kailash-nb: error: argument COMMAND: invalid choice: 'bogus'"
    )
    completed = run_cli("runs", "--limit", "x")
    assert completed.returncode == EXIT_USAGE
    assert "must be a whole number, got 'x'" in one_error_line(completed.stderr)


def test_missing_workflow_file_is_one_line(tmp_path):
    completed = run_cli("run", "nope.yaml", cwd=tmp_path)
    assert completed.returncode == EXIT_ERROR
    assert one_error_line(completed.stderr) == (
        "error: cannot read workflow file 'nope.yaml': No such file or directory"
    )


def test_unexpected_errors_are_one_line_with_code_70(monkeypatch, capsys):
    from kailash_nb.cli import commands

    def broken(args):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(commands, "list_nodes", broken)
    monkeypatch.delenv("KAILASH_NB_DEBUG", raising=False)
    assert main(["nodes"]) == 70
    assert one_error_line(capsys.readouterr().err) == (
        "error: internal error: RuntimeError: boom second line (set KAILASH_NB_DEBUG=1 for "
        "the traceback, and please report it)"
    )
    monkeypatch.setenv("KAILASH_NB_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["nodes"])


def test_the_documented_yaml_example_runs_as_documented(tmp_path, capsys):
    import re

    from _run_cli import ROOT

    text = (ROOT / "docs" / "cli.md").read_text()
    section = text[text.index("## The workflow file format") :]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    (tmp_path / "totals.yaml").write_text(example)
    arguments = ["run", str(tmp_path / "totals.yaml"), "--param", "load.n=10", "--no-history"]
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert "total   completed  {'result': 45}" in out
    assert "double  completed  {'value': 128}" in out
    assert "`kailash-nb run totals.yaml --param load.n=10` prints `total`'s `{'result': 45}`" in (
        " ".join(section.split())
    )
