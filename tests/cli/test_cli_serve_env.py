"""``kailash-nb serve`` configured from the environment (the container image's way)."""

from __future__ import annotations

import argparse

import httpx
import nbformat
import pytest
from _run_cli import cli_env, one_error_line, run_cli
from _serve_cli import free_port, serve_cli
from nbformat.v4 import new_code_cell, new_notebook

from kailash_nb.cli.errors import CommandError, UsageError
from kailash_nb.cli.serve_env import resolve_serve_options

UNSET = {"notebook": None, "host": None, "port": None, "workers": None}
PUBLISHING = (
    "import kailash_nb as kn\n%load_ext kailash_nb\nkn.workflow('prices')",
    "@kn.node\ndef price(qty=1, unit=2.5):\n    return qty * unit",
    "%kailash publish prices",
)


def resolve(environ: dict[str, str], **given) -> argparse.Namespace:
    return resolve_serve_options(argparse.Namespace(**{**UNSET, **given}), environ)


def test_without_options_or_variables_the_defaults_hold():
    resolved = resolve({}, notebook="n.ipynb")
    assert (resolved.notebook, resolved.host, resolved.port, resolved.workers) == (
        "n.ipynb",
        "127.0.0.1",
        8000,
        1,
    )


def test_variables_fill_unset_options():
    environ = {
        "KAILASH_NB_NOTEBOOK": "/app/notebooks/pricing.ipynb",
        "KAILASH_NB_HOST": "0.0.0.0",
        "KAILASH_NB_PORT": "9000",
        "KAILASH_NB_WORKERS": " 3 ",
    }
    resolved = resolve(environ)
    assert (resolved.notebook, resolved.host, resolved.port, resolved.workers) == (
        "/app/notebooks/pricing.ipynb",
        "0.0.0.0",
        9000,
        3,
    )


def test_options_on_the_command_line_win_over_variables():
    environ = {"KAILASH_NB_NOTEBOOK": "env.ipynb", "KAILASH_NB_PORT": "9000"}
    resolved = resolve(environ, notebook="arg.ipynb", host="::1", port=8100, workers=2)
    assert (resolved.notebook, resolved.host, resolved.port, resolved.workers) == (
        "arg.ipynb",
        "::1",
        8100,
        2,
    )


def test_empty_variables_count_as_unset():
    resolved = resolve({"KAILASH_NB_HOST": "", "KAILASH_NB_PORT": ""}, notebook="n.ipynb")
    assert (resolved.host, resolved.port) == ("127.0.0.1", 8000)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KAILASH_NB_PORT", "http", "KAILASH_NB_PORT must be a whole number, got 'http'"),
        ("KAILASH_NB_PORT", "70000", "KAILASH_NB_PORT must be between 1 and 65535, got 70000"),
        ("KAILASH_NB_WORKERS", "0", "KAILASH_NB_WORKERS must be at least 1, got 0"),
    ],
)
def test_a_bad_variable_is_refused_by_name(name, value, message):
    with pytest.raises(CommandError) as caught:
        resolve({name: value}, notebook="n.ipynb")
    assert str(caught.value) == message


def test_no_notebook_anywhere_is_a_usage_error():
    with pytest.raises(UsageError, match="set KAILASH_NB_NOTEBOOK"):
        resolve({})


def test_the_command_exits_2_without_a_notebook_and_1_on_a_bad_port_variable(tmp_path):
    env = cli_env()
    env.pop("KAILASH_NB_NOTEBOOK", None)
    missing = run_cli("serve", env=env)
    assert missing.returncode == 2
    assert one_error_line(missing.stderr).startswith("error: NOTEBOOK is required")
    notebook = tmp_path / "n.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), notebook)
    bad = run_cli(
        "serve", env={**env, "KAILASH_NB_NOTEBOOK": str(notebook), "KAILASH_NB_PORT": "0"}
    )
    assert bad.returncode == 1
    assert one_error_line(bad.stderr) == (
        "error: KAILASH_NB_PORT must be between 1 and 65535, got 0"
    )


def test_serve_runs_from_variables_alone_with_the_database_url_option(tmp_path):
    notebook = tmp_path / "prices.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(s) for s in PUBLISHING]), notebook)
    database = tmp_path / "store.db"
    port = free_port()
    env = cli_env(KAILASH_NB_NOTEBOOK=str(notebook), KAILASH_NB_PORT=str(port))
    env.pop("KAILASH_NB_DATABASE_URL", None)
    args = ["--database-url", f"sqlite:///{database}"]
    with serve_cli(args, env, port, ready="/ready") as (base, logs):
        response = httpx.post(f"{base}/workflows/prices/execute", json={}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["results"]["price"] == {"result": 2.5}
    assert f"prices.ipynb on http://127.0.0.1:{port}" in logs[0]
    assert database.is_file()  # the store the option named, not the default file
