"""The transactions benchmark (``benchmarks/bench_transactions.py``) runs end to end with
a tiny count and prints every figure: on SQLite always, on PostgreSQL in a database it
creates and drops. The figures themselves come from a real run of the benchmark; these
tests only check that it produces them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_transactions.py"
PG_ENV = "KAILASH_NB_TEST_PG_URL"
ROW = re.compile(
    r"^(sqlite|postgresql)\s+(saga|two_phase)\s+"
    r"([\d,.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d,.]+)\s+([\d,.]+)x\s+"
    r"(-?[\d.]+)$"
)


def run_bench(pg_url: str | None) -> str:
    """The benchmark's output, run with 2 transactions a batch and one timed batch."""
    environment = {key: value for key, value in os.environ.items() if key != PG_ENV}
    if pg_url is not None:
        environment[PG_ENV] = pg_url
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), environment.get("PYTHONPATH")])
    )
    finished = subprocess.run(
        [sys.executable, str(BENCH), "--count", "2", "--runs", "1"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


def figures(output: str) -> dict[tuple[str, str], list[float]]:
    """(store, pattern) -> the row's numbers, for every row of figures printed."""
    rows = {}
    for line in output.splitlines():
        match = ROW.match(line)
        if match:
            numbers = [float(text.replace(",", "")) for text in match.groups()[2:]]
            rows[match.group(1), match.group(2)] = numbers
    return rows


def check_rows(rows: dict[tuple[str, str], list[float]], store: str) -> None:
    for pattern in ("saga", "two_phase"):
        per_second, ms, writes, no_op, commits, selects, direct, ratio, _ = rows[store, pattern]
        assert per_second > 0 and ms > 0 and direct > 0 and ratio > 0
        # Every transaction is at least created (one write, one commit) and read back.
        assert writes >= commits >= 1 and selects >= 1
        assert 0 <= no_op <= writes


def test_on_sqlite_every_figure_is_printed():
    output = run_bench(None)
    rows = figures(output)
    assert set(rows) == {("sqlite", "saga"), ("sqlite", "two_phase")}, output
    check_rows(rows, "sqlite")
    assert f"postgresql: skipped (set {PG_ENV}=" in output


@pytest.mark.postgres
def test_on_postgresql_in_a_database_it_creates_and_drops(pg_url):
    output = run_bench(pg_url)
    rows = figures(output)
    assert {store for store, _ in rows} == {"sqlite", "postgresql"}, output
    check_rows(rows, "postgresql")
    database = re.search(r"^postgresql: \S+/(kailash_nb_bench_[0-9a-f]{12}), created", output, re.M)
    assert database is not None, output
    engine = sa.create_engine(sa.engine.make_url(pg_url).set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as connection:
            left = connection.exec_driver_sql(
                "SELECT count(*) FROM pg_database WHERE datname = %s", (database.group(1),)
            ).scalar()
    finally:
        engine.dispose()
    assert left == 0
