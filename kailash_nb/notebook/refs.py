"""Reading the short references notebook users write: ``"clean"``, ``"clean.rows"``
and ``"load.result -> clean.rows"``.

``node.output`` may use a dotted path into nested dicts (``"load.result.items"``),
as connections do. A reference without an output means the node's primary output
(``result`` unless the node was defined with another ``output=``).
"""

from __future__ import annotations

from typing import NamedTuple

from kailash_nb.notebook.errors import NotebookError

__all__ = ["ConnectionSpec", "OutputRef", "parse_connection", "parse_output_ref"]


class OutputRef(NamedTuple):
    """A node's output: ``output`` is ``None`` for the node's primary output."""

    node_id: str
    output: str | None


class ConnectionSpec(NamedTuple):
    """``source.output -> target.input`` as written by the user."""

    source: OutputRef
    target_node: str
    target_input: str

    def __str__(self) -> str:
        output = f".{self.source.output}" if self.source.output else ""
        return f"{self.source.node_id}{output} -> {self.target_node}.{self.target_input}"


def parse_output_ref(text: str) -> OutputRef:
    """``"node"`` or ``"node.output"`` (dotted paths allowed) as an ``OutputRef``.

    Raises:
        NotebookError: empty parts or surrounding junk.
    """
    if not isinstance(text, str):
        raise NotebookError(
            f"an output reference must be a string like 'load.result', got {text!r}"
        )
    node_id, _, output = text.strip().partition(".")
    if not node_id or (_ and not all(output.split("."))) or any(c.isspace() for c in text.strip()):
        raise NotebookError(
            f"{text!r} is not an output reference; write 'node' or 'node.output', "
            "for example 'load.result'"
        )
    return OutputRef(node_id, output or None)


def parse_connection(text: str) -> ConnectionSpec:
    """``"SRC[.out] -> DST.in"`` as a ``ConnectionSpec``.

    Raises:
        NotebookError: no ``->``, or a target without an input name.
    """
    source_text, arrow, target_text = text.partition("->")
    if not arrow:
        raise NotebookError(
            f"{text!r} is not a connection; write 'source.output -> target.input', "
            "for example 'load.result -> clean.rows'"
        )
    source = parse_output_ref(source_text)
    target = parse_output_ref(target_text)
    if target.output is None or "." in target.output:
        raise NotebookError(
            f"connection {text.strip()!r}: name the target's input, as in "
            f"'{target.node_id}.rows' (one name, no dots)"
        )
    return ConnectionSpec(source, target.node_id, target.output)
