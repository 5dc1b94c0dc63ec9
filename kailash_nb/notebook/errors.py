"""Errors of the notebook layer, shown in Jupyter as one short message.

Each defines ``_render_traceback_``, the hook IPython uses to print an exception:
a notebook user sees what went wrong and what to do, not the frames of the SDK.
``NodeRunError`` also shows the frames of the user's own code that failed.
"""

from __future__ import annotations

import os
import traceback
from typing import TYPE_CHECKING, Any

from kailash_nb.sdk_exceptions import KailashException, WorkflowExecutionError

if TYPE_CHECKING:
    from kailash_nb.notebook.display import RunResult

__all__ = ["ExportError", "NodeRunError", "NotebookError"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class NotebookError(KailashException):
    """A notebook command could not be carried out: unknown node, bad reference or
    argument. The message names the culprit and, where it can, close matches."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class ExportError(NotebookError):
    """A workflow cannot be written to a file (a node uses something unportable)."""


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
