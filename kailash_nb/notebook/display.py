"""Rich displays of runs and workflow status, and the deterministic mode.

``RunResult`` (what ``kn.run`` returns) and ``WorkflowStatus`` (what ``kn.status``
returns) render in Jupyter as tables: through pandas when it is installed, as a
plain HTML table otherwise. Their ``text/plain`` form never contains memory
addresses or timestamps; in deterministic mode (``kn.deterministic(True)`` or
``KAILASH_NB_DETERMINISTIC=1``) run ids and durations are shown as ``<run id>`` and
``<duration>``, so notebooks checked with ``pytest --nbval`` keep stable outputs::

    result = kn.run(threshold=3)
    result                  # table: node, state, duration, output
    result.value("clean")   # the primary output of one node
    result["clean"]         # all outputs of one node, as the engine returned them
"""

from __future__ import annotations

import html
import itertools
import os
import re
import reprlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kailash_nb.notebook.errors import NotebookError
from kailash_nb.notebook.view import NodeInfo
from kailash_nb.redaction import looks_secret

__all__ = [
    "DETERMINISTIC_ENV",
    "NodeOutcome",
    "RunResult",
    "WorkflowStatus",
    "format_duration",
    "is_deterministic",
    "mask",
    "preview",
    "preview_outputs",
    "set_deterministic",
]

#: Environment variable that turns deterministic displays on (``1``/``true``).
DETERMINISTIC_ENV = "KAILASH_NB_DETERMINISTIC"
RUN_ID_PLACEHOLDER = "<run id>"
DURATION_PLACEHOLDER = "<duration>"
MASK = "***"

_deterministic: bool | None = None
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{4,}")


class _Repr(reprlib.Repr):
    """``reprlib`` with dicts in insertion order (reprlib sorts their keys)."""

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = [
            f"{self.repr1(key, level - 1)}: {self.repr1(x[key], level - 1)}"
            for key in itertools.islice(x, self.maxdict)
        ]
        if len(x) > self.maxdict:
            pieces.append("...")
        return "{" + ", ".join(pieces) + "}"


_repr = _Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 6


def set_deterministic(enabled: bool | None) -> None:
    """Hide run ids and durations in displays (``None``: follow the environment)."""
    global _deterministic
    _deterministic = enabled


def is_deterministic() -> bool:
    """True when displays hide run ids and durations."""
    if _deterministic is not None:
        return _deterministic
    return os.environ.get(DETERMINISTIC_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _load_pandas() -> Any:
    """pandas, or ``None`` when it is not installed (the one place that imports it)."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def preview(value: Any, limit: int = 80) -> str:
    """A short, address-free one-line description of ``value``."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and type(value).__module__.startswith(("pandas", "numpy")):
        text = f"{type(value).__name__}({' x '.join(map(str, shape))})"
    else:
        try:
            text = _repr.repr(value)
        except Exception:
            text = f"<{type(value).__name__}>"
    text = _ADDRESS.sub("0x...", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def mask(name: str, text: str) -> str:
    """``text``, or ``***`` when ``name`` looks like it holds a secret."""
    return MASK if looks_secret(name) else text


def preview_outputs(outputs: Mapping[str, Any], primary: str) -> str:
    """Preview of a node's outputs: the primary value alone, or ``name=value`` pairs."""
    if set(outputs) == {primary}:
        return mask(primary, preview(outputs[primary]))
    return ", ".join(f"{name}={mask(name, preview(value, 40))}" for name, value in outputs.items())


def format_duration(seconds: float | None) -> str:
    """``"12.3 ms"`` or ``"1.20 s"``; ``"-"`` for none; the placeholder when deterministic."""
    if seconds is None:
        return "-"
    if is_deterministic():
        return DURATION_PLACEHOLDER
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s"


def format_run_id(run_id: str | None) -> str:
    """The run id, or its placeholder in deterministic mode."""
    if run_id is None:
        return "-"
    return RUN_ID_PLACEHOLDER if is_deterministic() else run_id


@dataclass(frozen=True)
class NodeOutcome:
    """How one node ended in a run.

    Attributes:
        node_id: the node.
        state: ``completed``, ``cached``, ``failed``, ``skipped`` or ``not run``
            (the run stopped before reaching it).
        duration: seconds it executed (``None`` when it did not execute).
        error: ``"ErrorType: message"`` when it failed.
        cell: where the node was defined (``"In [3]"``), when known.
        output: preview of its outputs.
        traceback: when it failed, its traceback trimmed to the user's frames
            (``Cell In [3], line 2, in f``, the failing line, ``ErrorType: message``),
            secrets scrubbed.
        exception: what it raised, when it failed (not part of equality).
    """

    node_id: str
    state: str
    duration: float | None = None
    error: str | None = None
    cell: str | None = None
    output: str | None = None
    traceback: str | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def detail(self) -> str:
        """The error (with the defining cell) for failed nodes, else the output preview."""
        if self.error is None:
            return self.output or ""
        return self.error + (f" (node defined in {self.cell})" if self.cell else "")


class _Table:
    """Rows of strings rendered as aligned text, an HTML table or a DataFrame."""

    def __init__(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.title = title
        self.columns = tuple(columns)
        self.rows = [tuple(row) for row in rows]

    def text(self) -> str:
        columns = zip(self.columns, *self.rows, strict=True)
        widths = [max(len(cell) for cell in column) for column in columns]
        lines = [self.title]
        for row in (self.columns, *self.rows):
            lines.append(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )
        return "\n".join(lines)

    def html(self) -> str:
        caption = f"<p><strong>{html.escape(self.title)}</strong></p>"
        pandas = _load_pandas()
        if pandas is not None:
            return caption + self.frame(pandas).to_html(index=False, escape=True)
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
            for row in self.rows
        )
        return (
            f'{caption}<table class="kailash-nb-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )

    def frame(self, pandas: Any) -> Any:
        return pandas.DataFrame(self.rows, columns=list(self.columns))


class _Displayable:
    """Shared rich display: ``text/plain`` and ``text/html`` from one ``_table()``."""

    def _table(self) -> _Table:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self._table().text()

    def _repr_html_(self) -> str:
        return self._table().html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        table = self._table()
        return {"text/plain": table.text(), "text/html": table.html()}

    def to_frame(self) -> Any:
        """The table as a pandas ``DataFrame`` (display strings, placeholders included).

        Raises:
            NotebookError: pandas is not installed.
        """
        pandas = _load_pandas()
        if pandas is None:
            raise NotebookError("to_frame() needs pandas: pip install pandas")
        return self._table().frame(pandas)


class RunResult(_Displayable, Mapping[str, dict[str, Any]]):
    """The outcome of ``kn.run``: each node's outputs, with the run id and timings.

    A read-only mapping of node id to that node's outputs (as the engine returns
    them); ``value(node_id)`` gives a node's primary output. Nodes that were skipped
    or not reached are absent from the mapping but listed in ``outcomes``.

    Attributes:
        workflow: the workflow's name.
        run_id: the engine's run id.
        outcomes: one ``NodeOutcome`` per node in the run, in definition order.
        status: how the run ended (``kailash_nb.run_status``): ``completed``, or
            ``failed`` when any node failed, or ``timeout``.
    """

    def __init__(
        self,
        workflow: str,
        run_id: str,
        outputs: Mapping[str, dict[str, Any]],
        outcomes: Sequence[NodeOutcome],
        primary_outputs: Mapping[str, str],
        status: str = "completed",
    ) -> None:
        self.workflow = workflow
        self.run_id = run_id
        self.status = status
        self._outputs = dict(outputs)
        self.outcomes = tuple(outcomes)
        self._primary = dict(primary_outputs)

    def __getitem__(self, node_id: str) -> dict[str, Any]:
        try:
            return self._outputs[node_id]
        except KeyError:
            raise KeyError(self._missing(node_id)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)

    def value(self, node_id: str) -> Any:
        """The primary output of ``node_id`` (``result`` unless renamed with ``output=``).

        Raises:
            KeyError: the node did not produce outputs in this run.
        """
        outputs = self[node_id]
        name = self._primary.get(node_id, "result")
        if name not in outputs:
            raise KeyError(
                f"node {node_id!r} has no output {name!r}; its outputs: {sorted(outputs)}"
            )
        return outputs[name]

    @property
    def timings(self) -> dict[str, float | None]:
        """Seconds each node executed; ``None`` for cached, skipped and unreached nodes."""
        return {outcome.node_id: outcome.duration for outcome in self.outcomes}

    @property
    def states(self) -> dict[str, str]:
        """How each node ended: completed, cached, failed, skipped or not run."""
        return {outcome.node_id: outcome.state for outcome in self.outcomes}

    @property
    def failed(self) -> list[str]:
        """Ids of the nodes that failed."""
        return [outcome.node_id for outcome in self.outcomes if outcome.state == "failed"]

    def _missing(self, node_id: str) -> str:
        from kailash_nb.sdk_exceptions import close_matches

        state = self.states.get(node_id)
        if state is not None:
            ended = "did not run" if state == "not run" else f"was {state}"
            return f"node {node_id!r} has no outputs in this run: it {ended}"
        return f"no node {node_id!r} in this run{close_matches(node_id, self.states)}"

    def _table(self) -> _Table:
        rows = [(o.node_id, o.state, format_duration(o.duration), o.detail) for o in self.outcomes]
        title = f"Run of workflow {self.workflow!r} (run {format_run_id(self.run_id)})"
        if self.status != "completed":
            title += f": {self.status}"
        return _Table(title, ("node", "state", "duration", "output"), rows)


class WorkflowStatus(_Displayable):
    """A snapshot of a workflow's nodes: state, last duration, inputs, defining cell.

    Attributes:
        workflow: the workflow's name.
        nodes: one ``NodeInfo`` per node, in definition order (secrets masked).
    """

    def __init__(self, workflow: str, nodes: Sequence[NodeInfo]) -> None:
        self.workflow = workflow
        self.nodes = tuple(nodes)

    def _table(self) -> _Table:
        rows = []
        for info in self.nodes:
            inputs = ", ".join(f"{name}={text}" for name, text in info["parameters"].items())
            detail = info["error"] if info["error"] is not None else info["output_preview"]
            rows.append(
                (
                    info["id"],
                    info["type"],
                    info["state"],
                    format_duration(info["duration"]),
                    info["cell"] or "-",
                    inputs,
                    detail or "",
                )
            )
        count = len(self.nodes)
        title = f"Workflow {self.workflow!r}: {count} node{'s' * (count != 1)}"
        columns = ("node", "type", "state", "last duration", "cell", "inputs", "output")
        return _Table(title, columns, rows)
