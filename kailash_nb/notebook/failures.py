"""How a failed notebook run reaches its user: ``NodeRunError``.

``run_failure`` turns the failed nodes of a run into the ``NodeRunError`` that
``kn.run`` (and ``%kailash run``) raises; IPython prints it the way it prints an
error raised in a cell: one message, then the frames of the user's own code that
failed (``Cell In [3], line 2, in clean`` and the failing line), not the frames of
the SDK (``_render_traceback_``). ``user_traceback`` builds that text; each failed
node's ``NodeOutcome`` and the widget's ``NodeInfo`` carry it too::

    Cell In [3], line 2, in clean
        return [row for row in rows if row["amount"] > threshold]
    KeyError: 'amount'
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Sequence
from typing import Any

from kailash_nb.notebook.definitions import cell_label
from kailash_nb.notebook.display import NodeOutcome, RunResult
from kailash_nb.redaction import scrub_secrets
from kailash_nb.sdk_exceptions import WorkflowExecutionError

__all__ = ["NodeRunError", "innermost_cause", "run_failure", "user_traceback"]

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
        failed = [o for o in self.result.outcomes if o.state == "failed" and o.traceback]
        for outcome in failed:
            where = f" (defined in {outcome.cell})" if outcome.cell else ""
            lines.append(f"Traceback of node {outcome.node_id!r}{where}:")
            lines.extend(outcome.traceback.splitlines())  # type: ignore[union-attr]
        return lines


def user_traceback(error: BaseException, *secret_sources: Any) -> str:
    """``error``'s traceback as IPython shows an error in a cell, without the SDK's
    frames: ``Cell In [n], line L, in f`` (or ``File "path", line L, in f``) and the
    failing line for each of the user's frames, then ``ErrorType: message``. Secrets
    of ``secret_sources`` (node config, run parameters) are scrubbed out."""
    lines = []
    for frame in traceback.extract_tb(error.__traceback__):
        filename = frame.filename
        if os.path.abspath(filename).startswith(_PACKAGE_DIR):
            continue
        label = cell_label(filename)
        where = f"Cell {label}" if label else f'File "{filename}"'
        lines.append(f"{where}, line {frame.lineno}, in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    lines.extend(line.rstrip("\n") for line in traceback.format_exception_only(type(error), error))
    return scrub_secrets("\n".join(lines), *secret_sources)


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
    error: Exception | None,
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
    if first.exception is not None:
        failure.__cause__ = first.exception
    elif error is not None:
        failure.__cause__ = innermost_cause(error) or error
    return failure
