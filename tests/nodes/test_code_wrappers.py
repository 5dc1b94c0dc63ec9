"""Kailash's code helpers: ``CodeExecutor``, ``FunctionWrapper``, ``ClassWrapper``,
class mode of ``PythonCodeNode`` and the workflow context in snippets."""

from __future__ import annotations

import pytest

from kailash_nb import LocalRuntime, WorkflowBuilder
from kailash_nb.nodes.base import NodeParameter
from kailash_nb.nodes.code import (
    AsyncPythonCodeNode,
    ClassWrapper,
    CodeExecutor,
    FunctionWrapper,
    PythonCodeNode,
)
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeExecutionError,
    NodeValidationError,
)


class Accumulator:
    """Adds up what it is given."""

    def __init__(self):
        self.total = 0.0

    def process(self, value: float) -> float:
        self.total += value
        return self.total


class Splitter:
    def transform(self, text: str, sep: str = ",") -> dict:
        return {"parts": text.split(sep), "count": len(text.split(sep))}


def test_code_executor_returns_variables_and_isolates_calls():
    executor = CodeExecutor()
    assert executor.execute_code("total = x + y\n_hidden = 1\nimport os", {"x": 1, "y": 2}) == {
        "x": 1,
        "y": 2,
        "total": 3,
    }
    executor.execute_code("secret = 'pw'", {})
    code = "try:\n    seen = secret\nexcept NameError:\n    seen = None"
    assert executor.execute_code(code, {})["seen"] is None
    assert executor.execute_code("r = math.sqrt(x)", {"x": 9})["r"] == 3.0


def test_code_executor_errors_are_node_execution_errors():
    with pytest.raises(NodeExecutionError, match="ZeroDivisionError"):
        CodeExecutor().execute_code("r = 1 / 0", {})
    with pytest.raises(NodeExecutionError, match="needs input 'b'"):
        CodeExecutor().execute_function(lambda a, b: a + b, {"a": 1})
    assert CodeExecutor().execute_function(
        lambda a, b=2, **rest: (a, b, rest), {"a": 1, "c": 3}
    ) == (
        1,
        2,
        {"c": 3},
    )


def test_function_wrapper():
    def multiply(x: int, y: int = 2) -> int:
        """Multiplies."""
        return x * y

    wrapper = FunctionWrapper(multiply)
    assert wrapper.get_input_types() == {"x": int, "y": int}
    assert wrapper.get_parameter_info()["y"] == {"type": int, "has_default": True, "default": 2}
    assert wrapper.get_output_type() is int
    assert not wrapper.accepts_var_keyword()
    assert wrapper.execute({"x": 3}) == {"result": 6}
    node = wrapper.to_node(name="mul")
    assert node.metadata.name == "mul"
    assert node.metadata.description == "Multiplies."
    assert node.execute(x="4", y=3) == {"result": 12}


def test_class_wrapper_keeps_its_instance_the_node_makes_one_per_run():
    wrapper = ClassWrapper(Accumulator)
    assert wrapper.process_method == "process"
    assert wrapper.get_input_types() == {"value": float}
    assert wrapper.execute({"value": 5.0}) == {"result": 5.0}
    assert wrapper.execute({"value": 3.0}) == {"result": 8.0}
    node = wrapper.to_node(name="acc")
    assert node.execute(value=5.0) == {"result": 5.0}
    assert node.execute(value=3.0) == {"result": 3.0}


def test_class_mode_dict_result_is_the_outputs_and_runs_in_a_workflow():
    builder = WorkflowBuilder()
    builder.add_node(PythonCodeNode.from_class(Splitter), "split", {"sep": ";"})
    results, _ = LocalRuntime().execute(builder.build(), parameters={"split": {"text": "a;b"}})
    assert results["split"] == {"parts": ["a", "b"], "count": 2}


def test_class_without_a_process_method_is_refused():
    with pytest.raises(NodeConfigurationError, match="none of the methods"):
        ClassWrapper(dict)
    with pytest.raises(NodeConfigurationError, match="no method 'nope'"):
        PythonCodeNode(class_type=Accumulator, process_method="nope")
    with pytest.raises(NodeConfigurationError, match="exactly one of"):
        PythonCodeNode(code="r = 1", class_type=Accumulator)


def test_kailash_options_left_at_none_are_accepted():
    node = PythonCodeNode(code="result = x", input_schema=None, sandbox_mode=None, output_type=int)
    assert node.execute(x=1) == {"result": 1}
    with pytest.raises(NodeConfigurationError, match="'sandbox_mode' is not supported"):
        PythonCodeNode(code="result = x", sandbox_mode="trusted")


def test_input_and_output_schemas_declare_and_check():
    def total(values):
        return str(sum(values))

    node = PythonCodeNode.from_function(
        total,
        input_schema={"values": NodeParameter(name="values", type=list, required=True)},
        output_schema={"result": NodeParameter(name="result", type=int, required=True)},
    )
    assert node.parameters["values"].type is list
    assert node.execute(values=(1, 2)) == {"result": 3}
    with pytest.raises(NodeValidationError, match="input 'values'"):
        node.execute(values=5)
    snippet = PythonCodeNode(
        code="result = {'n': n}",
        output_schema={"total": NodeParameter(name="total", type=int, required=True)},
    )
    with pytest.raises(NodeValidationError, match="Required output 'total' not provided"):
        snippet.execute(n=1)
    with pytest.raises(NodeConfigurationError, match="'input_schema' must map names"):
        PythonCodeNode(code="result = x", input_schema={"x": int})


def test_snippets_call_the_workflow_context():
    node = PythonCodeNode(code="set_workflow_context('k', v)\nresult = get_workflow_context('k')")
    assert sorted(node.parameters) == ["v"]
    assert node.execute(v=7) == {"result": 7}
    assert node.get_workflow_context("k") == 7
    assert node.get_workflow_context("missing", "d") == "d"


def test_async_class_mode_awaits_the_method():
    class Fetch:
        async def run(self, x: int) -> int:
            return x + 1

    assert AsyncPythonCodeNode(class_type=Fetch).execute(x=1) == {"result": 2}
