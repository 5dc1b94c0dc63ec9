"""Nodes added for Kailash code: ``TextReaderNode``, ``AsyncSwitchNode``,
``AsyncMergeNode``. Expected values were observed under Kailash 2.65."""

from __future__ import annotations

import pytest

from kailash_nb import LocalRuntime, WorkflowBuilder
from kailash_nb.nodes.data.readers import TextReaderNode
from kailash_nb.nodes.logic.async_operations import AsyncMergeNode, AsyncSwitchNode
from kailash_nb.nodes.registry import NodeRegistry
from kailash_nb.sdk_exceptions import NodeConfigurationError, WorkflowExecutionError


def _read(config: dict) -> dict:
    builder = WorkflowBuilder()
    builder.add_node("TextReaderNode", "t", config)
    builder.add_node("PythonCodeNode", "n", {"code": "result = len(text)"})
    builder.add_connection("t", "text", "n", "text")
    return LocalRuntime().execute(builder.build())[0]


def test_text_reader_reads_the_whole_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("héllo\r\nwörld\n".encode())
    assert _read({"file_path": str(path)})["t"] == {"text": "héllo\nwörld\n"}
    assert _read({"file_path": path, "encoding": "latin-1"})["t"] == {"text": "hÃ©llo\nwÃ¶rld\n"}


def test_text_reader_parameters_match_kailash():
    parameters = TextReaderNode().get_parameters()
    assert {name: (p.required, p.default) for name, p in parameters.items()} == {
        "file_path": (True, None),
        "encoding": (False, "utf-8"),
    }
    assert NodeRegistry.get("TextReaderNode") is TextReaderNode


def test_text_reader_errors_name_the_problem(tmp_path):
    with pytest.raises(WorkflowExecutionError, match="file not found"):
        _read({"file_path": str(tmp_path / "missing.txt")})
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(WorkflowExecutionError, match=r"cannot read .* as utf-8"):
        _read({"file_path": str(bad)})
    with pytest.raises(NodeConfigurationError, match="unknown encoding"):
        TextReaderNode(file_path="x.txt", encoding="nope")


def _switch_and_merge(switch: str, merge: str) -> dict:
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "src", {"code": "result = {'v': 5}"})
    builder.add_node(switch, "sw", {"condition_field": "v", "operator": ">", "value": 3})
    builder.add_node("PythonCodeNode", "yes", {"code": "result = 'big'"})
    builder.add_node("PythonCodeNode", "no", {"code": "result = 'small'"})
    builder.add_node(merge, "m", {})
    builder.add_connection("src", "result", "sw", "input_data")
    builder.add_connection("sw", "true_output", "yes", "data")
    builder.add_connection("sw", "false_output", "no", "data")
    builder.add_connection("yes", "result", "m", "data1")
    builder.add_connection("no", "result", "m", "data2")
    return LocalRuntime().execute(builder.build())[0]


def test_async_switch_and_merge_behave_as_the_sync_nodes():
    # Kailash 2.65 runs the untaken branch after an AsyncSwitchNode even in
    # skip_branches mode (m gets ['big', 'small']); kailash_nb skips it as for SwitchNode.
    expected = {
        "src": {"result": {"v": 5}},
        "sw": {"true_output": {"v": 5}, "false_output": None, "condition_result": True},
        "yes": {"result": "big"},
        "m": {"merged_data": "big"},
    }
    assert _switch_and_merge("SwitchNode", "MergeNode") == expected
    assert _switch_and_merge("AsyncSwitchNode", "AsyncMergeNode") == expected


def test_async_logic_nodes_run_on_their_own():
    assert AsyncMergeNode().execute(data1=[1], data2=[2]) == {"merged_data": [1, 2]}
    assert AsyncMergeNode(merge_type="merge_dict", chunk_size=10).execute(
        data1={"a": 1}, data2={"b": 2}
    ) == {"merged_data": {"a": 1, "b": 2}}
    assert AsyncSwitchNode(condition_field="v", operator="==", value=1).execute(
        input_data={"v": 1}
    ) == {"true_output": {"v": 1}, "false_output": None, "condition_result": True}
    assert AsyncSwitchNode.is_async and AsyncSwitchNode.is_branching
