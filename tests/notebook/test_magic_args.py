"""The ``%kailash`` argument parser, on its own (no IPython)."""

import pytest

from kailash_nb.notebook.errors import NotebookError
from kailash_nb.notebook.magic_args import (
    ConnectCommand,
    DisconnectCommand,
    ExportCommand,
    HelpRequested,
    InvalidateCommand,
    MagicArgumentError,
    NodeCommand,
    RemoveCommand,
    RunCommand,
    ShowCommand,
    StatusCommand,
    WorkflowCommand,
    parse,
    parse_value,
)
from kailash_nb.notebook.refs import OutputRef, parse_connection, parse_output_ref
from kailash_nb.sdk_exceptions import KailashException


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("workflow etl", WorkflowCommand("etl")),
        ("workflow 'my flow'", WorkflowCommand("my flow")),
        ("show", ShowCommand()),
        ("status", StatusCommand()),
        ("rm clean", RemoveCommand("clean")),
        ("invalidate", InvalidateCommand(None)),
        ("invalidate clean", InvalidateCommand("clean")),
        ("export flow.yaml", ExportCommand("flow.yaml")),
        ("export 'my flow.py'", ExportCommand("my flow.py")),
        ("connect load.result -> clean.rows", ConnectCommand("load.result -> clean.rows")),
        ("connect load->clean.rows", ConnectCommand("load->clean.rows")),
        ("disconnect load -> clean.rows", DisconnectCommand("load -> clean.rows")),
        ("run", RunCommand()),
        ("run report", RunCommand("report")),
        ("run --no-cache", RunCommand(no_cache=True)),
    ],
)
def test_line_commands(line, expected):
    assert parse(line) == expected


def test_run_parameters_are_literals_or_strings():
    command = parse(
        "run report --param threshold=3 --param ratio=0.5 --param name=alice "
        "--param 'path=a b.csv' --param flags=[1,2] --param on=True --param quoted='\"3\"'"
    )
    assert command == RunCommand(
        "report",
        {
            "threshold": 3,
            "ratio": 0.5,
            "name": "alice",
            "path": "a b.csv",
            "flags": [1, 2],
            "on": True,
            "quoted": "3",
        },
    )


def test_dotted_parameters_target_one_node():
    command = parse("run --param load.path=x.csv --param load.limit=5 --param n=1")
    assert command.params == {"load": {"path": "x.csv", "limit": 5}, "n": 1}


def test_node_cell_arguments():
    assert parse("node", has_body=True) == NodeCommand()
    assert parse(
        "node clean --in rows=load --in extra=other.result.items --out cleaned", has_body=True
    ) == NodeCommand("clean", None, {"rows": "load", "extra": "other.result.items"}, "cleaned")
    assert parse("node load --type CSVReaderNode --out data", has_body=True) == NodeCommand(
        "load", "CSVReaderNode", {}, "data"
    )


def test_parse_value():
    assert parse_value("3") == 3
    assert parse_value("'3'") == "3"
    assert parse_value("None") is None
    assert parse_value("not a literal(") == "not a literal("


@pytest.mark.parametrize(
    ("line", "has_body", "message"),
    [
        ("rnu", False, r"unknown command 'rnu' \(did you mean 'run'\?\)"),
        ("stauts", False, r"did you mean 'status'"),
        ("node clean", False, "needs a cell body"),
        ("run", True, "takes no cell body"),
        ("rm", False, "the following arguments are required: NODE"),
        ("run --param threshold", False, "--param expects name=value"),
        ("run --param .x=1", False, "--param expects name=value or node.name=value"),
        ("node --in rows", True, "--in expects name=value"),
        ("run --bogus", False, "unrecognized arguments: --bogus"),
        ("workflow 'unclosed", False, "cannot split the arguments"),
        ("workflow", False, "required: name"),
    ],
)
def test_mistakes_raise_a_short_kailash_error(line, has_body, message):
    with pytest.raises(MagicArgumentError, match=message) as caught:
        parse(line, has_body=has_body)
    assert isinstance(caught.value, KailashException)


@pytest.mark.parametrize("line", ["", "--help", "help", "run --help", "node -h", "connect"])
def test_help_is_raised_with_its_text(line):
    with pytest.raises(HelpRequested) as caught:
        parse(line, has_body=line.startswith("node"))
    assert "usage:" in caught.value.text


def test_output_references():
    assert parse_output_ref("load") == OutputRef("load", None)
    assert parse_output_ref("load.result.items") == OutputRef("load", "result.items")
    for bad in ("", ".result", "load.", "load..x", "lo ad"):
        with pytest.raises(NotebookError, match="not an output reference"):
            parse_output_ref(bad)


def test_connection_specs():
    spec = parse_connection(" load.result ->clean.rows ")
    assert (spec.source, spec.target_node, spec.target_input) == (
        OutputRef("load", "result"),
        "clean",
        "rows",
    )
    assert str(parse_connection("load -> clean.rows")) == "load -> clean.rows"
    with pytest.raises(NotebookError, match="not a connection"):
        parse_connection("load.result clean.rows")
    with pytest.raises(NotebookError, match="name the target's input"):
        parse_connection("load -> clean")
