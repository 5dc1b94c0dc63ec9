"""Three reference participant services on 127.0.0.1 (orders, payments, shipping), for
the tests of the transaction nodes and the ``tx`` command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kailash_nb.transactions.service import ParticipantService


@contextmanager
def three_services(directory: Path) -> Iterator[list[ParticipantService]]:
    """Start orders, payments and shipping with their ledgers in ``directory``."""
    started = [
        ParticipantService(name, directory / f"{name}.db").start()
        for name in ("orders", "payments", "shipping")
    ]
    try:
        yield started
    finally:
        for service in started:
            service.stop()
