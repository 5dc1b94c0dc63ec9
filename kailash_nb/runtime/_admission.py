"""``RunSlots``: a cap on concurrent runs shared by sync and async callers."""

from __future__ import annotations

from kailash_nb._fifo_slots import FifoSlots

__all__ = ["RunSlots"]


class RunSlots(FifoSlots):
    """At most ``limit`` runs at once; further callers wait in arrival order.

    Sync callers block on a ``threading.Event``; async callers await a future on
    their own loop, so one runtime can be shared by threads and event loops alike.
    """

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"max_concurrent_workflows must be a positive int, got {limit!r}")
        super().__init__(limit)
        self.limit = limit
