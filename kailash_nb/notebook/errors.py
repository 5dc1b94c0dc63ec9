"""Errors of the notebook layer, shown in Jupyter as one short message.

Each defines ``_render_traceback_``, the hook IPython uses to print an exception:
a notebook user sees what went wrong and what to do, not the frames of the SDK.
A failed run raises ``NodeRunError`` (``kailash_nb.notebook.failures``).
"""

from __future__ import annotations

from kailash_nb.sdk_exceptions import KailashException

__all__ = ["ExportError", "NotebookError"]


class NotebookError(KailashException):
    """A notebook command could not be carried out: unknown node, bad reference or
    argument. The message names the culprit and, where it can, close matches."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class ExportError(NotebookError):
    """A workflow cannot be written to a file (a node uses something unportable)."""
