"""Plain-text tables for terminal output."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

__all__ = ["format_table", "format_time", "preview"]


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Render ``rows`` as a fixed-width text table with ``columns`` as the header."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max(len(column), *(len(line[i]) for line in cells)) if cells else len(column)
        for i, column in enumerate(columns)
    ]

    def render(values: Sequence[str]) -> str:
        return "  ".join(
            value.rjust(width) if _numeric(value) else value.ljust(width)
            for value, width in zip(values, widths, strict=True)
        ).rstrip()

    lines = [render(columns), render(["-" * width for width in widths])]
    lines += [render(line) for line in cells]
    return "\n".join(lines)


def preview(value: Any, limit: int = 60) -> str:
    """A one-line, truncated ``repr`` of ``value``."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_time(timestamp: float | None) -> str:
    """Local ``YYYY-MM-DD HH:MM:SS`` for an epoch timestamp, or ``""``."""
    if timestamp is None:
        return ""
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return "" if value is None else str(value)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()
