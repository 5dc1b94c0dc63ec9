"""A progress bar for long runs: one tick per finished node, on a terminal only."""

from __future__ import annotations

import sys
from typing import TextIO

from kailash_nb.runtime.events import NodeEvent

__all__ = ["ProgressBar"]

_FINISHED = frozenset({"completed", "failed", "skipped", "cached"})


class ProgressBar:
    """Event-bus subscriber drawing ``[#####-----] 5/10 nodes`` on ``stream``.

    Draws only when ``stream`` is a terminal, so piped output stays clean.
    """

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, event: object) -> None:
        if not isinstance(event, NodeEvent) or event.state not in _FINISHED:
            return
        if event.iteration not in (None, 1):
            return
        self.done = min(self.done + 1, self.total)
        if self.enabled:
            filled = self.width * self.done // self.total
            bar = "#" * filled + "-" * (self.width - filled)
            self.stream.write(f"\r[{bar}] {self.done}/{self.total} nodes")
            self.stream.flush()

    def finish(self) -> None:
        """End the bar's line."""
        if self.enabled and self.done:
            self.stream.write("\n")
            self.stream.flush()
