"""``Clock``: a clock that moves only when a test moves it (``clock.now = ...`` or
``clock.advance(seconds)``); pass it wherever the code under test takes ``clock=``."""

from __future__ import annotations


class Clock:
    """A settable clock returning ``now`` (seconds)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds
