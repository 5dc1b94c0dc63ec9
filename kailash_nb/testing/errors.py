"""Typed errors of the workflow tester: a config file that does not load, test data or
requirements that make no sense.

A workflow that fails its test is not an error: ``test_workflow`` returns a result whose
``success`` is false and whose ``errors`` say why.
"""

from __future__ import annotations

from kailash_nb.sdk_exceptions import KailashException, WorkflowValidationError

__all__ = ["WorkflowConfigError", "WorkflowTestSetupError"]


class WorkflowConfigError(WorkflowValidationError):
    """A workflow config file cannot be loaded: the message names the file, the line
    and the node (or connection) involved, then the problem.

    Attributes:
        problem: what is wrong.
        source: the file.
        line: the 1-based line in ``source`` (``None`` when unknown).
        node_id: the node involved, when there is one.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str,
        line: int | None = None,
        node_id: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        self.node_id = node_id
        where = [source if line is None else f"{source}, line {line}"]
        if node_id is not None:
            where.append(f"node {node_id!r}")
        super().__init__(f"{', '.join(where)}: {problem}")


class WorkflowTestSetupError(KailashException, ValueError):
    """``test_workflow`` was given something it cannot use: unreadable or malformed
    test data (the message names the file and line), an unknown performance
    requirement, a limit that is not a positive number, or a workflow that cannot be
    sent to a fresh process for ``isolation="process"``."""
