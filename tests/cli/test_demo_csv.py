"""``kailash-nb demo --csv FILE`` checks the file: required columns, bad rows rejected
one by one with their line and reason, empty files refused."""

from __future__ import annotations

import pytest
from _run_cli import one_error_line, run_cli

from kailash_nb.cli import main
from kailash_nb.demo import REQUIRED_COLUMNS, clean_orders, read_orders, run_demo

HEADER = ",".join(REQUIRED_COLUMNS)

MIXED = f"""{HEADER}
1,EMEA,A,Sensor,2,10.00,shipped
2,EMEA,B,Sensor,-3,5.00,shipped
3,APAC,C,Gear,1,inf,shipped
4,APAC,C,Gear,1,nan,shipped
5,APAC,C,Gear,1

6,AMER,D,Gear,abc,1.0,shipped
7,AMER,D,Gear,2,3.5,shipped
8,AMER,D,Gear,0,3.5,shipped
9,AMER,D,Gear,1,-2,shipped
10,,D,Gear,1,2,shipped
11,AMER,D,Gear,1,2,shipped,extra
12,AMER,E,Gear,1,2,cancelled
"""


def test_bad_rows_are_rejected_with_line_and_reason_and_good_rows_still_count(tmp_path):
    data = tmp_path / "orders.csv"
    data.write_text(MIXED)

    results, _ = run_demo(data)

    clean = results["clean"]["result"]
    assert [row["order_id"] for row in clean["rows"]] == ["1", "7"]
    assert clean["rejected"] == 9
    assert clean["rejections"] == [
        {"line": 3, "reason": "quantity -3 is not positive"},
        {"line": 4, "reason": "unit_price 'inf' is not a finite number"},
        {"line": 5, "reason": "unit_price 'nan' is not a finite number"},
        {"line": 6, "reason": "has 5 fields, the header has 7"},
        {"line": 8, "reason": "quantity 'abc' is not a whole number"},  # line 7 is blank
        {"line": 10, "reason": "quantity 0 is not positive"},
        {"line": 11, "reason": "unit_price '-2' is negative"},
        {"line": 12, "reason": "region is empty"},
        {"line": 13, "reason": "has 8 fields, the header has 7"},
    ]
    assert results["by_region"]["result"] == [
        {"region": "EMEA", "orders": 1, "revenue": 20.0},
        {"region": "AMER", "orders": 1, "revenue": 7.0},
    ]


def test_one_bad_row_never_costs_another():
    columns = list(REQUIRED_COLUMNS)
    good = {"line": 2, "fields": ["1", "EMEA", "A", "S", "2", "1.5", "shipped"], "columns": columns}
    short = {"line": 3, "fields": ["2", "EMEA"], "columns": columns}
    cleaned = clean_orders([short, good])
    assert [row["amount"] for row in cleaned["rows"]] == [3.0]
    assert cleaned["rejections"] == [{"line": 3, "reason": "has 2 fields, the header has 7"}]


def test_columns_may_come_in_any_order_with_extra_ones(tmp_path):
    data = tmp_path / "orders.csv"
    data.write_text(
        "\ufeffstatus,unit_price,quantity,product,customer,region,order_id,note\n"
        "shipped,2.5,4,Gear,Acme,EMEA,1,first\n"
    )
    results, _ = run_demo(data)
    assert results["by_region"]["result"] == [{"region": "EMEA", "orders": 1, "revenue": 10.0}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty: expected a header row with the columns " + ", ".join(REQUIRED_COLUMNS)),
        (f"{HEADER}\n\n", "has a header but no order rows"),
        (
            "order_id,region,customer,product,qty,unit_price\n1,EMEA,A,S,1,2\n",
            "lacks the required columns quantity, status (its header: order_id, region, "
            "customer, product, qty, unit_price)",
        ),
    ],
)
def test_unusable_files_are_refused_naming_the_problem(tmp_path, text, message):
    data = tmp_path / "orders.csv"
    data.write_text(text)
    with pytest.raises(ValueError) as raised:
        read_orders(str(data))
    assert str(raised.value) == f"orders.csv {message}"


def test_demo_command_lists_rejections_and_exits_0(tmp_path, capsys):
    data = tmp_path / "orders.csv"
    data.write_text(MIXED)
    assert main(["demo", "--csv", str(data)]) == 0
    out = capsys.readouterr().out
    assert "2 orders kept, 9 rejected" in out
    assert "Rejected rows" in out
    assert "   6  has 5 fields, the header has 7" in out


def test_demo_command_exits_1_when_every_row_is_rejected(tmp_path, capsys):
    data = tmp_path / "orders.csv"
    data.write_text(f"{HEADER}\n1,EMEA,A,S,-1,2,shipped\n")
    assert main(["demo", "--csv", str(data)]) == 1
    captured = capsys.readouterr()
    assert "   2  quantity -1 is not positive" in captured.out
    assert one_error_line(captured.err) == (
        f"error: no valid order in {data}: every row was rejected"
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "error: orders.csv is empty: expected a header row with the columns "),
        ("a,b\n1,2\n", "error: orders.csv lacks the required columns order_id, region, "),
    ],
)
def test_demo_command_refuses_empty_and_wrong_files_in_one_line(tmp_path, text, error):
    data = tmp_path / "orders.csv"
    data.write_text(text)
    completed = run_cli("demo", "--csv", str(data))
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert one_error_line(completed.stderr).startswith(error)
