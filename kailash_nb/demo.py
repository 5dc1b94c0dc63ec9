"""The demo workflow behind ``kailash-nb demo``: a small ETL over a bundled CSV.

``load`` reads the orders file, ``clean`` drops cancelled and malformed rows and
computes amounts, then two independent branches summarise revenue by region and
pick the largest orders.
"""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path
from typing import Any

from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.workflow.builder import WorkflowBuilder
from kailash_nb.workflow.graph import Workflow

__all__ = ["build_demo_workflow", "demo_csv_path", "run_demo"]

_CLEAN = """
rows = []
rejected = 0
for row in orders:
    if row["status"] == "cancelled":
        continue
    try:
        quantity = int(row["quantity"])
        unit_price = float(row["unit_price"])
    except ValueError:
        rejected += 1
        continue
    rows.append({**row, "quantity": quantity, "amount": round(quantity * unit_price, 2)})
result = {"rows": rows, "rejected": rejected}
"""

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


def read_orders(path: str) -> list[dict[str, str]]:
    """Read a CSV file into a list of row dicts."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def build_demo_workflow(path: str | Path | None = None) -> Workflow:
    """The demo ETL workflow over ``path`` (the bundled CSV by default)."""
    builder = WorkflowBuilder()
    builder.add_node(
        PythonCodeNode.from_function(read_orders), "load", {"path": str(path or demo_csv_path())}
    )
    builder.add_node("PythonCodeNode", "clean", {"code": _CLEAN})
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
