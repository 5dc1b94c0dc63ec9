"""The typed error hierarchy of kailash_nb.sdk_exceptions (mirrors kailash.sdk_exceptions)."""

import builtins

import pytest

from kailash_nb import sdk_exceptions
from kailash_nb.sdk_exceptions import ConnectionError as KailashConnectionError
from kailash_nb.sdk_exceptions import (
    CycleConfigurationError,
    ExportException,
    KailashException,
    MemoryLimitExceededError,
    NodeConfigurationError,
    NodeException,
    NodeExecutionError,
    NodeValidationError,
    RunParameterError,
    RuntimeException,
    RuntimeExecutionError,
    UnknownNodeError,
    WorkflowException,
    WorkflowExecutionError,
    WorkflowTimeoutError,
    WorkflowValidationError,
    close_matches,
)


@pytest.mark.parametrize(
    ("error", "parent"),
    [
        (KailashException, Exception),
        (NodeException, KailashException),
        (NodeValidationError, NodeException),
        (NodeExecutionError, NodeException),
        (NodeConfigurationError, NodeException),
        (WorkflowException, KailashException),
        (WorkflowValidationError, WorkflowException),
        (CycleConfigurationError, WorkflowValidationError),
        (ExportException, WorkflowValidationError),
        (RunParameterError, WorkflowValidationError),
        (WorkflowExecutionError, WorkflowException),
        (WorkflowTimeoutError, WorkflowExecutionError),
        (MemoryLimitExceededError, WorkflowExecutionError),
        (KailashConnectionError, WorkflowException),
        (UnknownNodeError, KailashConnectionError),
        (RuntimeException, KailashException),
        (RuntimeExecutionError, RuntimeException),
    ],
)
def test_error_has_documented_parent(error, parent):
    assert issubclass(error, parent)
    assert error.__bases__[0] is parent


def test_every_error_is_a_kailash_exception():
    errors = [getattr(sdk_exceptions, name) for name in sdk_exceptions.__all__]
    errors = [error for error in errors if isinstance(error, type)]
    assert len(errors) == 18
    assert all(issubclass(error, KailashException) for error in errors)


def test_unknown_node_error_is_also_a_validation_error():
    assert issubclass(UnknownNodeError, WorkflowValidationError)
    assert not issubclass(KailashConnectionError, WorkflowValidationError)


def test_branches_of_the_hierarchy_are_disjoint():
    assert not issubclass(NodeException, WorkflowException)
    assert not issubclass(WorkflowException, NodeException)
    assert not issubclass(RuntimeException, WorkflowException)
    assert not issubclass(NodeValidationError, NodeExecutionError)
    assert not issubclass(WorkflowValidationError, WorkflowExecutionError)


def test_node_error_caught_as_kailash_exception():
    with pytest.raises(KailashException, match="bad input"):
        raise NodeValidationError("bad input")


def test_workflow_timeout_error_is_also_a_builtin_timeout_error():
    assert issubclass(WorkflowTimeoutError, builtins.TimeoutError)
    with pytest.raises(builtins.TimeoutError):
        raise WorkflowTimeoutError("run took too long", run_id="r1")


def test_connection_error_shadows_but_is_not_the_builtin():
    assert KailashConnectionError.__name__ == "ConnectionError"
    assert KailashConnectionError is not builtins.ConnectionError
    assert not issubclass(KailashConnectionError, builtins.ConnectionError)
    assert not issubclass(KailashConnectionError, OSError)


def test_workflow_execution_error_carries_results_run_id_and_node_id():
    error = WorkflowExecutionError(
        "node 'b' failed", results={"a": {"result": 1}}, run_id="run-1", node_id="b"
    )
    assert str(error) == "node 'b' failed"
    assert error.results == {"a": {"result": 1}}
    assert error.run_id == "run-1"
    assert error.node_id == "b"


def test_workflow_execution_error_defaults_to_fresh_empty_results():
    first = WorkflowExecutionError("first")
    second = WorkflowExecutionError("second")
    assert first.results == {}
    assert first.run_id is None
    assert first.node_id is None
    first.results["x"] = 1
    assert second.results == {}


def test_workflow_execution_error_context_is_keyword_only():
    with pytest.raises(TypeError):
        WorkflowExecutionError("message", {"a": 1})


def test_workflow_timeout_error_carries_execution_context():
    error = WorkflowTimeoutError("timed out", results={"a": 1}, run_id="r9", node_id="slow")
    assert isinstance(error, WorkflowExecutionError)
    assert (error.results, error.run_id, error.node_id) == ({"a": 1}, "r9", "slow")


def test_close_matches_suggests_similar_names():
    hint = close_matches("PythonCodeNod", ["PythonCodeNode", "SwitchNode", "MergeNode"])
    assert hint == " (did you mean 'PythonCodeNode'?)"


def test_close_matches_returns_empty_string_without_a_match():
    assert close_matches("zzz", ["PythonCodeNode", "SwitchNode"]) == ""
    assert close_matches("anything", []) == ""


def test_close_matches_respects_limit_and_accepts_any_iterable():
    candidates = (name for name in ["value1", "value2", "value3", "value4"])
    hint = close_matches("value", candidates, limit=2)
    assert hint.startswith(" (did you mean ")
    assert hint.count("'value") == 2
