"""The demo workflow behind ``kailash-nb demo``: a small ETL over a bundled CSV.

``load`` reads the orders file, ``clean`` drops cancelled orders and rejects malformed
rows (each with its line number and reason) and computes amounts, then two independent
branches summarise revenue by region and pick the largest orders.

The file must be UTF-8 CSV whose header holds the columns of ``REQUIRED_COLUMNS`` (any
order, more allowed). ``load`` fails, naming the file, when it is empty, lacks a
required column or has no data row. ``clean`` checks each row on its own, so one bad row
never costs another: a row is rejected when its number of fields differs from the
header's (a truncated row), ``order_id``, ``region`` or ``status`` is empty,
``quantity`` is not a whole number of at least 1, or ``unit_price`` is not a finite
number of at least 0 (``inf`` and ``nan`` are refused). Rows whose ``status`` is
``cancelled`` are dropped without being rejected.
"""

from __future__ import annotations

import csv
import math
from importlib import resources
from pathlib import Path
from typing import Any

from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.workflow.builder import WorkflowBuilder
from kailash_nb.workflow.graph import Workflow

__all__ = [
    "REQUIRED_COLUMNS",
    "build_demo_workflow",
    "clean_orders",
    "demo_csv_path",
    "read_orders",
    "run_demo",
]

#: The columns the demo's CSV must have.
REQUIRED_COLUMNS = ("order_id", "region", "customer", "product", "quantity", "unit_price", "status")
_NON_EMPTY = ("order_id", "region", "status")

_BY_REGION = """
totals = {}
for row in rows:
    entry = totals.setdefault(row["region"], {"region": row["region"], "orders": 0, "revenue": 0.0})
    entry["orders"] += 1
    entry["revenue"] = round(entry["revenue"] + row["amount"], 2)
result = sorted(totals.values(), key=lambda entry: entry["revenue"], reverse=True)
"""

_TOP_ORDERS = """
result = [
    {key: row[key] for key in ("order_id", "customer", "product", "amount")}
    for row in sorted(rows, key=lambda row: row["amount"], reverse=True)[:limit]
]
"""


def demo_csv_path() -> Path:
    """Path of the bundled ``orders.csv``."""
    return Path(str(resources.files("kailash_nb") / "data" / "orders.csv"))


def read_orders(path: str) -> list[dict[str, Any]]:
    """Read the orders CSV at ``path``: one ``{"line": n, "fields": [...], "columns":
    [...]}`` per non-blank data row (``n`` is its line in the file), checked by
    ``clean_orders``.

    Raises:
        ValueError: the file is empty, not UTF-8, lacks a column of ``REQUIRED_COLUMNS``
            (each missing one named) or has no data row.
    """
    name = Path(path).name
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise ValueError(
                    f"{name} is empty: expected a header row with the columns "
                    f"{', '.join(REQUIRED_COLUMNS)}"
                )
            columns = [column.strip() for column in header]
            missing = [column for column in REQUIRED_COLUMNS if column not in columns]
            if missing:
                raise ValueError(
                    f"{name} lacks the required column{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(missing)} (its header: {', '.join(columns)})"
                )
            rows = [
                {"line": reader.line_num, "fields": fields, "columns": columns}
                for fields in reader
                if any(field.strip() for field in fields)
            ]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name} is not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise ValueError(f"{name} is not valid CSV: {exc}") from None
    if not rows:
        raise ValueError(f"{name} has a header but no order rows")
    return rows


def clean_orders(orders: list[dict[str, Any]]) -> dict[str, Any]:
    """Check each row ``read_orders`` read; keep the valid, not cancelled orders with
    their ``amount``.

    Returns:
        ``{"rows": [order dicts], "rejected": count, "rejections": [{"line", "reason"}]}``.
    """
    rows = []
    rejections = []
    for entry in orders:
        order, reason = _check_row(entry["fields"], entry["columns"])
        if reason is not None:
            rejections.append({"line": entry["line"], "reason": reason})
        elif order["status"] != "cancelled":
            rows.append(order)
    return {"rows": rows, "rejected": len(rejections), "rejections": rejections}


def _check_row(fields: list[str], columns: list[str]) -> tuple[dict[str, Any], str | None]:
    """``(order, None)`` for a valid row, else ``({}, reason)``."""
    if len(fields) != len(columns):
        return {}, f"has {len(fields)} fields, the header has {len(columns)}"
    order: dict[str, Any] = {
        column: value.strip() for column, value in zip(columns, fields, strict=True)
    }
    for column in _NON_EMPTY:
        if not order[column]:
            return {}, f"{column} is empty"
    text = order["quantity"]
    try:
        quantity = int(text)
    except ValueError:
        return {}, f"quantity {text!r} is not a whole number" if text else "quantity is empty"
    if quantity < 1:
        return {}, f"quantity {quantity} is not positive"
    text = order["unit_price"]
    try:
        unit_price = float(text)
    except ValueError:
        return {}, f"unit_price {text!r} is not a number" if text else "unit_price is empty"
    if not math.isfinite(unit_price):
        return {}, f"unit_price {text!r} is not a finite number"
    if unit_price < 0:
        return {}, f"unit_price {text!r} is negative"
    order["quantity"] = quantity
    order["amount"] = round(quantity * unit_price, 2)
    return order, None


def build_demo_workflow(path: str | Path | None = None) -> Workflow:
    """The demo ETL workflow over ``path`` (the bundled CSV by default)."""
    builder = WorkflowBuilder()
    builder.add_node(
        PythonCodeNode.from_function(read_orders), "load", {"path": str(path or demo_csv_path())}
    )
    builder.add_node(PythonCodeNode.from_function(clean_orders), "clean", {})
    builder.add_node("PythonCodeNode", "by_region", {"code": _BY_REGION})
    builder.add_node("PythonCodeNode", "top_orders", {"code": _TOP_ORDERS, "limit": 3})
    builder.add_connection("load", "result", "clean", "orders")
    builder.add_connection("clean", "result.rows", "by_region", "rows")
    builder.add_connection("clean", "result.rows", "top_orders", "rows")
    return builder.build(name="orders-etl", description="Revenue by region from orders.csv")


def run_demo(path: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """Build and run the demo workflow; return ``(results, run_id)``."""
    with LocalRuntime() as runtime:
        return runtime.execute(build_demo_workflow(path))
