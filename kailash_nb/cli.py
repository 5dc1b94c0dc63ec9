"""The ``kailash-nb`` command."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["format_table", "main"]


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


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return "" if value is None else str(value)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "", 1).lstrip("-").isdigit()


def _demo(args: argparse.Namespace) -> int:
    from kailash_nb.demo import build_demo_workflow, demo_csv_path
    from kailash_nb.runtime.local import LocalRuntime

    path = args.csv or demo_csv_path()
    workflow = build_demo_workflow(path)
    started = time.perf_counter()
    with LocalRuntime() as runtime:
        results, run_id = runtime.execute(workflow)
    elapsed = time.perf_counter() - started
    clean = results["clean"]["result"]
    print(f"{workflow!r} from {path}")
    print(f"run {run_id}: {len(results)} nodes in {elapsed * 1000:.1f} ms")
    print(f"{len(clean['rows'])} orders kept, {clean['rejected']} rejected\n")
    print("Revenue by region")
    print(format_table(results["by_region"]["result"], ["region", "orders", "revenue"]))
    print("\nLargest orders")
    print(
        format_table(results["top_orders"]["result"], ["order_id", "customer", "product", "amount"])
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``kailash-nb``."""
    parser = argparse.ArgumentParser(
        prog="kailash-nb", description="Build, run and serve kailash_nb workflows."
    )
    from kailash_nb import __version__

    parser.add_argument("--version", action="version", version=f"kailash-nb {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run the demo ETL workflow on the bundled orders.csv",
        description="Build and run a small ETL workflow (load, clean, revenue by region, "
        "largest orders) and print the results.",
    )
    demo.add_argument("--csv", help="run on this CSV file instead of the bundled one")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kailash-nb``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from kailash_nb.sdk_exceptions import KailashException

    try:
        return args.handler(args)
    except KailashException as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
