"""The ``kailash-nb`` command and the demo workflow."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from kailash_nb.cli import format_table, main
from kailash_nb.demo import build_demo_workflow, run_demo


def test_demo_results_are_computed_from_the_bundled_csv():
    results, run_id = run_demo()

    assert len(run_id) == 36
    assert results["clean"]["result"]["rejected"] == 1
    assert len(results["clean"]["result"]["rows"]) == 9
    by_region = {row["region"]: row for row in results["by_region"]["result"]}
    assert by_region["APAC"] == {"region": "APAC", "orders": 3, "revenue": 2049.0}
    assert by_region["EMEA"]["revenue"] == pytest.approx(234.0 + 719.2 + 259.0)
    assert [row["order_id"] for row in results["top_orders"]["result"]] == ["1011", "1003", "1006"]


def test_demo_runs_on_another_csv(tmp_path):
    data = tmp_path / "orders.csv"
    data.write_text(
        "order_id,region,customer,product,quantity,unit_price,status\n"
        "1,EMEA,A,Sensor,2,10.00,shipped\n"
        "2,EMEA,B,Sensor,1,5.00,cancelled\n"
    )
    results, _ = run_demo(data)
    assert results["by_region"]["result"] == [{"region": "EMEA", "orders": 1, "revenue": 20.0}]


def test_demo_workflow_shape():
    workflow = build_demo_workflow()
    assert repr(workflow) == "<Workflow orders-etl: 4 nodes, 3 edges>"
    assert set(workflow.graph.successors("clean")) == {"by_region", "top_orders"}


def test_demo_command_prints_tables(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "Revenue by region" in out
    assert "APAC         3  2,049.00" in out
    assert "1011  Hooli     Gateway  996.00" in out


def test_demo_command_reports_a_missing_file_as_an_error(tmp_path, capsys):
    assert main(["demo", "--csv", str(tmp_path / "missing.csv")]) == 1
    err = capsys.readouterr().err
    assert "error: " in err
    assert "missing.csv" in err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("kailash-nb") is None, reason="console script not installed")
def test_console_script_runs_the_demo():
    completed = subprocess.run(
        ["kailash-nb", "demo"], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "Largest orders" in completed.stdout


def test_module_entry_point_help():
    completed = subprocess.run(
        [sys.executable, "-m", "kailash_nb.cli", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0
    assert "--csv" in completed.stdout


def test_format_table_aligns_numbers_right_and_text_left():
    table = format_table(
        [{"name": "a", "value": 1.5}, {"name": "bbb", "value": 10.0}], ["name", "value"]
    )
    assert table.splitlines() == [
        "name  value",
        "----  -----",
        "a      1.50",
        "bbb   10.00",
    ]
