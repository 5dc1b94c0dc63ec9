"""CSV and JSON nodes: reading, atomic writing, round trips and the errors they raise."""

from __future__ import annotations

import datetime
import json
import os
import stat
from pathlib import Path

import pytest

from kailash_nb.nodes import _files
from kailash_nb.nodes.base import NodeRegistry
from kailash_nb.nodes.data import CSVReaderNode, CSVWriterNode, JSONReaderNode, JSONWriterNode
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeExecutionError,
    NodeValidationError,
)
from kailash_nb.workflow.builder import WorkflowBuilder

ROWS = [
    {"id": "1", "name": "Ada", "city": "London"},
    {"id": "2", "name": "Grace", "city": "New York"},
    {"id": "3", "name": 'Zoë, "the" first', "city": "Zürich"},
]


def _leftovers(directory: Path) -> list[str]:
    """Temporary files an atomic write left behind."""
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


@pytest.mark.parametrize(
    "name",
    ["CSVReaderNode", "CSVWriterNode", "JSONReaderNode", "JSONWriterNode"],
)
def test_file_nodes_are_registered_builtins(name):
    assert NodeRegistry.get(name).__module__ == "kailash_nb.nodes.data._nodes"


# -- CSV reading -----------------------------------------------------------------------


def test_csv_reader_returns_dicts_keyed_by_header(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("id,name\n1,Ada\n\n2,Grace\n", encoding="utf-8")
    assert CSVReaderNode(file_path=str(path)).execute() == {
        "data": [{"id": "1", "name": "Ada"}, {"id": "2", "name": "Grace"}]
    }


def test_csv_reader_without_header_returns_lists(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("a;1\nb;2\n", encoding="utf-8")
    node = CSVReaderNode(file_path=path, delimiter=";", has_header=False)
    assert node.execute() == {"data": [["a", "1"], ["b", "2"]]}


def test_csv_reader_skips_a_utf8_byte_order_mark(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffid,name\n1,Ada\n".encode())
    assert CSVReaderNode(file_path=path).execute()["data"] == [{"id": "1", "name": "Ada"}]


def test_csv_reader_honours_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("name\nJosé\n".encode("latin-1"))
    node = CSVReaderNode(file_path=path, encoding="latin-1")
    assert node.execute()["data"] == [{"name": "José"}]
    with pytest.raises(NodeExecutionError, match=r"cannot read .* as utf-8.*set encoding"):
        CSVReaderNode(id="load", file_path=path).execute()


def test_csv_reader_fills_short_rows_with_none(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("a,b,c\n1,2\n", encoding="utf-8")
    assert CSVReaderNode(file_path=path).execute()["data"] == [{"a": "1", "b": "2", "c": None}]


def test_csv_reader_names_the_line_of_a_row_longer_than_the_header(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("a,b\n1,2\n1,2,3\n", encoding="utf-8")
    with pytest.raises(NodeExecutionError, match=r"node 'load'.*line 3 has 3 fields.*header has 2"):
        CSVReaderNode(id="load", file_path=path).execute()


def test_csv_reader_refuses_a_repeated_header_name(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("a,b,a\n1,2,3\n", encoding="utf-8")
    with pytest.raises(NodeExecutionError, match=r"repeats \['a'\].*has_header=False"):
        CSVReaderNode(file_path=path).execute()


def test_csv_reader_missing_file_names_node_and_path(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(NodeExecutionError) as caught:
        CSVReaderNode(id="load", file_path=str(path)).execute()
    message = str(caught.value)
    assert "node 'load' (CSVReaderNode)" in message
    assert str(path) in message
    assert "file not found" in message


def test_csv_reader_on_a_directory_says_so(tmp_path):
    with pytest.raises(NodeExecutionError, match="is a directory"):
        CSVReaderNode(file_path=tmp_path).execute()


@pytest.mark.parametrize(
    ("bad_path", "reason"),
    [("", "must not be empty"), ("   ", "must not be empty"), ("a\0b.csv", "NUL byte"), (7, "int")],
)
def test_bad_path_fails_at_build(bad_path, reason):
    with pytest.raises(NodeConfigurationError, match=f"node 'load'.*{reason}"):
        CSVReaderNode(id="load", file_path=bad_path)


@pytest.mark.parametrize("node_class", [CSVReaderNode, JSONReaderNode])
def test_bad_path_given_at_run_is_a_validation_error(node_class):
    with pytest.raises(NodeValidationError, match="NUL byte"):
        node_class(id="load").execute(file_path="x\0.csv")


def test_bad_path_in_a_workflow_fails_at_build(tmp_path):
    builder = WorkflowBuilder()
    builder.add_node("JSONWriterNode", "save", {"file_path": "", "data": 1})
    with pytest.raises(NodeConfigurationError, match=r"node 'save'.*must not be empty"):
        builder.build()


@pytest.mark.parametrize(
    ("option", "match"),
    [({"delimiter": ";;"}, "delimiter must be one character"), ({"encoding": "nope"}, "unknown")],
)
def test_bad_csv_options_fail_at_build(option, match):
    with pytest.raises(NodeConfigurationError, match=match):
        CSVReaderNode(file_path="x.csv", **option)


# -- CSV writing -----------------------------------------------------------------------


def test_csv_writer_writes_dict_rows_with_a_header_of_every_key(tmp_path):
    path = tmp_path / "out.csv"
    rows = [{"a": 1, "b": 2}, {"b": 3, "c": None}]
    result = CSVWriterNode(file_path=path, data=rows).execute()
    assert result == {"rows_written": 2, "file_path": str(path)}
    assert path.read_bytes() == b"a,b,c\r\n1,2,\r\n,3,\r\n"  # RFC 4180 line ends


def test_csv_writer_writes_list_rows_as_they_are(tmp_path):
    path = tmp_path / "out.tsv"
    node = CSVWriterNode(file_path=str(path), data=[["x", 1], ("y", 2)], delimiter="\t")
    assert node.execute()["rows_written"] == 2
    assert path.read_text(encoding="utf-8").splitlines() == ["x\t1", "y\t2"]


def test_csv_writer_empty_data_writes_an_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    assert CSVWriterNode(file_path=path, data=[]).execute()["rows_written"] == 0
    assert path.read_text() == ""


def test_csv_writer_refuses_mixed_rows(tmp_path):
    with pytest.raises(NodeValidationError, match=r"data\[1\] is a list.*not a mix"):
        CSVWriterNode(file_path=tmp_path / "x.csv", data=[{"a": 1}, [1]]).execute()
    assert _leftovers(tmp_path) == []
    assert not (tmp_path / "x.csv").exists()


def test_csv_round_trip_keeps_quotes_commas_and_unicode(tmp_path):
    path = tmp_path / "round.csv"
    CSVWriterNode(file_path=path, data=ROWS).execute()
    assert CSVReaderNode(file_path=path).execute()["data"] == ROWS


def test_csv_writer_missing_directory_says_to_create_it(tmp_path):
    path = tmp_path / "missing" / "out.csv"
    with pytest.raises(NodeExecutionError, match=r"node 'save'.*does not exist; create it"):
        CSVWriterNode(id="save", file_path=path, data=ROWS).execute()


def test_csv_write_failing_midway_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old content\n", encoding="ascii")
    # Enough rows that the writer has flushed part of the temp file before failing.
    rows = [{"n": str(i) * 20} for i in range(20_000)] + [{"n": "naïve"}]
    with pytest.raises(NodeExecutionError, match=r"cannot write .* as ascii.*not changed"):
        CSVWriterNode(id="save", file_path=path, data=rows, encoding="ascii").execute()
    assert path.read_text(encoding="ascii") == "old content\n"
    assert _leftovers(tmp_path) == []


def test_crash_before_the_rename_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "out.csv"
    path.write_text("old content\n", encoding="utf-8")

    def crash(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "replace", crash)
    with pytest.raises(NodeExecutionError, match=r"cannot write .*No space left on device"):
        CSVWriterNode(file_path=path, data=ROWS).execute()
    assert path.read_text(encoding="utf-8") == "old content\n"
    assert _leftovers(tmp_path) == []


def test_atomic_write_fsyncs_the_file_before_replacing_it(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(_files.os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(
        _files.os, "replace", lambda a, b: events.append("replace") or real_replace(a, b)
    )
    JSONWriterNode(file_path=tmp_path / "x.json", data=[1]).execute()
    assert events[:2] == ["fsync", "replace"]


def test_atomic_write_keeps_the_mode_of_an_existing_file(tmp_path):
    path = tmp_path / "shared.csv"
    path.write_text("old\n")
    path.chmod(0o640)
    CSVWriterNode(file_path=path, data=ROWS).execute()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_atomic_write_gives_a_new_file_the_usual_mode(tmp_path):
    path = tmp_path / "new.json"
    JSONWriterNode(file_path=path, data={}).execute()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_atomic_write_goes_through_a_symlink(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("[]")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    JSONWriterNode(file_path=link, data=[1]).execute()
    assert link.is_symlink()
    assert json.loads(target.read_text()) == [1]


# -- JSON ------------------------------------------------------------------------------


def test_json_round_trip(tmp_path):
    path = tmp_path / "data.json"
    data = {"rows": ROWS, "count": 3, "ok": True, "ratio": 0.5, "none": None}
    assert JSONWriterNode(file_path=path, data=data).execute() == {"file_path": str(path)}
    assert JSONReaderNode(file_path=path).execute() == {"data": data}
    assert path.read_text(encoding="utf-8").startswith('{\n  "rows"')
    assert "Zürich" in path.read_text(encoding="utf-8")


def test_json_writer_indent_none_writes_one_line(tmp_path):
    path = tmp_path / "data.json"
    JSONWriterNode(file_path=path, data={"a": [1, 2]}, indent=None).execute()
    assert path.read_text(encoding="utf-8") == '{"a": [1, 2]}\n'


def test_json_reader_malformed_json_names_the_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "a": 1,\n  "b": oops\n}\n', encoding="utf-8")
    with pytest.raises(NodeExecutionError) as caught:
        JSONReaderNode(id="load", file_path=path).execute()
    message = str(caught.value)
    assert "node 'load' (JSONReaderNode)" in message
    assert f"malformed JSON in {str(path)!r} at line 3 column 8" in message


def test_json_reader_missing_file_names_node_and_path(tmp_path):
    path = tmp_path / "missing.json"
    with pytest.raises(NodeExecutionError, match=r"node 'load' \(JSONReaderNode\).*missing\.json"):
        JSONReaderNode(id="load", file_path=path).execute()


def test_json_writer_unserializable_data_leaves_the_old_file_intact(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('{"version": 1}\n', encoding="utf-8")
    data = {"version": 2, "when": datetime.datetime(2024, 1, 1)}
    with pytest.raises(NodeExecutionError, match="datetime is not JSON serializable"):
        JSONWriterNode(id="save", file_path=path, data=data).execute()
    assert json.loads(path.read_text(encoding="utf-8")) == {"version": 1}
    assert _leftovers(tmp_path) == []


def test_json_writer_crash_while_writing_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "data.json"
    path.write_text('{"version": 1}\n', encoding="utf-8")

    def crash(_fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_files.os, "fsync", crash)
    with pytest.raises(NodeExecutionError, match="Input/output error"):
        JSONWriterNode(file_path=path, data={"version": 2}).execute()
    assert json.loads(path.read_text(encoding="utf-8")) == {"version": 1}
    assert _leftovers(tmp_path) == []


# -- in a workflow ---------------------------------------------------------------------


def test_csv_to_json_workflow(tmp_path):
    source, target = tmp_path / "in.csv", tmp_path / "out.json"
    CSVWriterNode(file_path=source, data=ROWS).execute()
    builder = WorkflowBuilder()
    builder.add_node("CSVReaderNode", "load", {"file_path": str(source)})
    builder.add_node("PythonCodeNode", "pick", {"code": "result = [r['name'] for r in rows]"})
    builder.add_node("JSONWriterNode", "save", {"file_path": str(target)})
    builder.add_connection("load", "data", "pick", "rows")
    builder.add_connection("pick", "result", "save", "data")
    results, _ = LocalRuntime().execute(builder.build())
    assert results["save"] == {"file_path": str(target)}
    assert json.loads(target.read_text(encoding="utf-8")) == [row["name"] for row in ROWS]


def test_file_path_can_be_given_at_run_time(tmp_path):
    path = tmp_path / "in.json"
    path.write_text("[1, 2]", encoding="utf-8")
    builder = WorkflowBuilder()
    builder.add_node("JSONReaderNode", "load", {})
    results, _ = LocalRuntime().execute(builder.build(), {"load": {"file_path": str(path)}})
    assert results["load"] == {"data": [1, 2]}
