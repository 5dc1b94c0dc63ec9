"""Typed errors raised by kailash_nb.

Every error names what was wrong (node id, port, parameter, path) and says what
to do about it. The hierarchy mirrors ``kailash.sdk_exceptions`` so code that
catches Kailash errors ports by renaming the import::

    KailashException
    ├── NodeException
    │   ├── NodeValidationError
    │   ├── NodeExecutionError
    │   └── NodeConfigurationError
    ├── WorkflowException
    │   ├── WorkflowValidationError
    │   │   ├── CycleConfigurationError
    │   │   ├── ExportException
    │   │   └── RunParameterError
    │   ├── WorkflowExecutionError
    │   │   ├── WorkflowTimeoutError
    │   │   └── MemoryLimitExceededError
    │   └── ConnectionError
    │       └── UnknownNodeError (also a WorkflowValidationError)
    └── RuntimeException
        └── RuntimeExecutionError
"""

from __future__ import annotations

import builtins
import difflib
from collections.abc import Iterable
from typing import Any

__all__ = [
    "ConnectionError",
    "CycleConfigurationError",
    "ExportException",
    "KailashException",
    "MemoryLimitExceededError",
    "NodeConfigurationError",
    "NodeException",
    "NodeExecutionError",
    "NodeValidationError",
    "RunParameterError",
    "RuntimeException",
    "RuntimeExecutionError",
    "ServiceUnavailableError",
    "UnknownNodeError",
    "WorkflowException",
    "WorkflowExecutionError",
    "WorkflowTimeoutError",
    "WorkflowValidationError",
    "close_matches",
]


class KailashException(Exception):
    """Root of every error kailash_nb raises on purpose."""


class NodeException(KailashException):
    """A problem with one node: its configuration, its inputs or its run."""


class NodeValidationError(NodeException):
    """A node received inputs that do not match its declared parameters."""


class NodeExecutionError(NodeException):
    """A node's ``run`` raised or returned something other than a dict."""


class NodeConfigurationError(NodeException):
    """A node's configuration is invalid (unknown key, wrong type, bad code)."""


class WorkflowException(KailashException):
    """A problem with a workflow as a whole."""


class WorkflowValidationError(WorkflowException):
    """The workflow cannot run as defined: unknown node type, missing input, cycle."""


class CycleConfigurationError(WorkflowValidationError):
    """A cycle declared with ``create_cycle`` is incomplete or inconsistent."""


class ExportException(WorkflowValidationError):
    """A workflow could not be exported: its config holds a value JSON cannot carry.

    Kailash's name; it is also a ``WorkflowValidationError``, which kailash_nb raised
    for the same problem before it had this name.
    """


class RunParameterError(WorkflowValidationError):
    """The parameters given to a run do not fit the workflow.

    The message speaks Python (``parameters={node_id: {input: value}}``); front ends
    with their own syntax (the CLI's ``--param node.input=value``) phrase it from the
    attributes instead.

    Attributes:
        kind: what was wrong, one of ``"not_a_dict"`` (the parameters are not a dict),
            ``"bad_name"`` (an empty or dunder name), ``"node_value_not_a_dict"`` (the
            value under a node id is not a dict of inputs), ``"unknown_input"`` (the
            node has no such input), ``"unknown_parameter"`` (a key that is neither a
            node id nor an input any node declares) and ``"missing_required"``.
        node_id: the node concerned, if any.
        input_name: the input or workflow-level parameter name concerned, if any.
        missing: for ``"missing_required"``, every ``(node_id, input_name)`` pair
            that nothing provides.
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        node_id: str | None = None,
        input_name: str | None = None,
        missing: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.node_id = node_id
        self.input_name = input_name
        self.missing = missing


class ConnectionError(WorkflowException):  # noqa: A001 - the Kailash name
    """A connection between two nodes is invalid.

    Shadows the builtin ``ConnectionError`` inside this module only, as in Kailash;
    import it by name from ``kailash_nb.sdk_exceptions``.
    """


class UnknownNodeError(ConnectionError, WorkflowValidationError):
    """A connection names a node the workflow does not have.

    Both a ``ConnectionError`` (kailash_nb's error for a bad connection) and a
    ``WorkflowValidationError`` (Kailash's error for an unknown source or target
    node), so code catching either one catches it.
    """


class WorkflowExecutionError(WorkflowException):
    """A workflow run stopped because a node with dependents failed.

    Attributes:
        results: outputs of the nodes that finished before the run stopped.
        run_id: id of the stopped run.
        node_id: the node whose failure stopped the run, when there is one.
    """

    def __init__(
        self,
        message: str,
        *,
        results: dict[str, Any] | None = None,
        run_id: str | None = None,
        node_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.results = results if results is not None else {}
        self.run_id = run_id
        self.node_id = node_id


class WorkflowTimeoutError(WorkflowExecutionError, builtins.TimeoutError):
    """A workflow run exceeded the runtime's ``workflow_timeout``."""


class MemoryLimitExceededError(WorkflowExecutionError):
    """A run was stopped because the process's memory went past the runtime's
    ``memory_limit_mb``. ``results``, ``run_id`` and ``node_id`` (the first node the
    stop failed) are those of ``WorkflowExecutionError``.

    Attributes:
        limit_bytes: the limit.
        measured_bytes: the memory measured when the limit was found exceeded.
        method: how it was measured (e.g. ``"resident set size from /proc/self/statm"``).
    """

    def __init__(
        self,
        message: str,
        *,
        limit_bytes: int,
        measured_bytes: int,
        method: str,
        results: dict[str, Any] | None = None,
        run_id: str | None = None,
        node_id: str | None = None,
    ) -> None:
        super().__init__(message, results=results, run_id=run_id, node_id=node_id)
        self.limit_bytes = limit_bytes
        self.measured_bytes = measured_bytes
        self.method = method


class ServiceUnavailableError(KailashException):
    """A store or service the work depends on cannot be reached now; the same request
    may succeed later. A node that fails with one makes the gateway answer 503 with
    ``Retry-After`` instead of 422."""


class RuntimeException(KailashException):
    """A problem with the runtime itself rather than with one workflow."""


class RuntimeExecutionError(RuntimeException):
    """The runtime could not execute the request (bad arguments, shut down, ...)."""


def close_matches(name: str, candidates: Iterable[str], limit: int = 3) -> str:
    """Return a ``"did you mean ..."`` hint for ``name`` among ``candidates``, or ``""``."""
    matches = difflib.get_close_matches(name, list(candidates), n=limit, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + ", ".join(repr(m) for m in matches) + "?)"
