"""How a failed notebook run reaches its user: ``NodeRunError``.

``run_failure`` turns the failed nodes of a run into the ``NodeRunError`` that
``kn.run`` raises; IPython prints it as one message followed by the frames of the
user's own code that failed (``_render_traceback_``), not the frames of the SDK.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Sequence
from typing import Any

from kailash_nb.notebook.display import NodeOutcome, RunResult
from kailash_nb.sdk_exceptions import WorkflowExecutionError

__all__ = ["NodeRunError", "innermost_cause", "run_failure"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class NodeRunError(WorkflowExecutionError):
    """A run finished with failed nodes, or stopped at one.

    Attributes:
        result: the ``RunResult`` of the run, with the outputs of the nodes that
            finished and the error of each failed node.
        node_id: the first failed node.
        cell: where that node was defined (``"In [3]"``), when known.
    """

    def __init__(
        self,
        message: str,
        *,
        result: RunResult,
        node_id: str,
        cell: str | None,
        results: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            message,
            results=dict(result) if results is None else results,
            run_id=result.run_id,
            node_id=node_id,
        )
        self.result = result
        self.cell = cell

    def _render_traceback_(self) -> list[str]:
        lines = [f"{type(self).__name__}: {self}"]
        original = innermost_cause(self)
        if original is not None and original.__traceback__ is not None:
            frames = [
                frame
                for frame in traceback.extract_tb(original.__traceback__)
                if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR)
            ]
            if frames:
                lines.append("The failing code:")
                lines.extend(
                    line.rstrip("\n") for line in traceback.StackSummary.from_list(frames).format()
                )
        return lines


def innermost_cause(error: BaseException) -> BaseException | None:
    """The exception at the bottom of ``error``'s ``__cause__`` chain, if any."""
    cause = error.__cause__
    seen = {id(error)}
    while cause is not None and cause.__cause__ is not None and id(cause) not in seen:
        seen.add(id(cause))
        cause = cause.__cause__
    return cause


def run_failure(
    result: RunResult,
    outcomes: Sequence[NodeOutcome],
    error: WorkflowExecutionError | None,
) -> Exception | None:
    """The exception a run ends with: ``NodeRunError`` when nodes failed, the
    engine's own error (a timeout) otherwise, or ``None`` for a clean run."""
    failed = [outcome for outcome in outcomes if outcome.state == "failed"]
    if not failed:
        return error
    first = failed[0]
    where = f" (defined in {first.cell})" if first.cell else ""
    message = f"node {first.node_id!r}{where} failed: {first.error}"
    if len(failed) > 1:
        message += "; also failed: " + ", ".join(repr(o.node_id) for o in failed[1:])
    failure = NodeRunError(message, result=result, node_id=first.node_id, cell=first.cell)
    if error is not None:
        failure.__cause__ = innermost_cause(error)
    return failure
