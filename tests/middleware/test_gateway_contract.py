"""Schemathesis against a served gateway: the server keeps the contract it publishes.

A gateway (``tests/_contract_app.py``: an untyped code workflow, a typed one taking a
pydantic model and ints, a workflow whose only node raises and one whose failing node
has a dependent; token auth with an admin; sessions, runs, events, ``/ws``) is served in
its own process, and the ``schemathesis`` CLI runs every check (``--checks all``) on
its ``/openapi.json`` with a fixed seed and a bounded number of examples, the coverage,
fuzzing and stateful phases included: once without a token (the auth checks) and once
with the admin token. Any failure fails the test, with Schemathesis's report.

The CLI (in a subprocess) rather than the pytest plugin: the plugin loads the schema at
import time, before a server can be started by a fixture, and has no stateful phase
driven by the document's links as the CLI has.

The long run (more examples) is marked ``contract_long`` and deselected by default:
``pytest -m contract_long tests/test_gateway_contract.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

_HERE = Path(__file__).resolve().parent
_SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

# Answers the document promises for requests the schema allows, beyond Schemathesis's
# defaults: a run of a valid request may fail (422 run_failed), and a complete
# WebSocket handshake switches protocols (101).
_CONFIG = """
[[operations]]
include-path-regex = "^/workflows/[^/]+/execute$"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx",
]

[[operations]]
include-path = "/ws"
checks.positive_data_acceptance.expected-statuses = ["101", "401", "403", "404", "429"]
checks.not_a_server_error.expected-statuses = ["101", "2xx", "3xx", "4xx"]
"""


# The access-controlled variant: the admin may run code, typed and fails_early but not
# fails (403 access_denied), fails_early's second node is denied (403
# node_access_denied), and typed's outputs are masked field by field.
_POLICY = """
rules:
  - id: admins-run
    effect: allow
    actions: [execute, read_output]
    resource: {workflow: "*"}
    subject: {role: admin}
  - id: not-fails
    effect: deny
    action: execute
    resource: {workflow: fails}
  - id: not-after
    effect: deny
    action: execute
    resource: {workflow: fails_early, node: after}
  - id: hide-x
    effect: deny
    action: read_output
    resource: {workflow: typed, node: "*", field: x}
"""


def _serve_contract_app(database_url: str, jwt_secret: str, *arguments: str):
    """Start the contract app; ``(process, base URL, admin token)``."""
    process = subprocess.Popen(
        [sys.executable, str(_HERE / "_contract_app.py"), database_url, *arguments],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "KAILASH_NB_JWT_SECRET": jwt_secret},
    )
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    return process, f"http://127.0.0.1:{ready['port']}", ready["token"]


def _stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def contract_gateway(module_sqlite_url, jwt_secret):
    """``(base URL, admin token)`` of the contract app served in a subprocess."""
    process, base_url, token = _serve_contract_app(module_sqlite_url, jwt_secret)
    try:
        yield base_url, token
    finally:
        _stop(process)


@pytest.fixture
def access_controlled_gateway(tmp_path, jwt_secret):
    """``(base URL, admin token)`` of the contract app under ``_POLICY``."""
    policy = tmp_path / "policies.yaml"
    policy.write_text(_POLICY)
    url = f"sqlite:///{tmp_path / 'access.db'}"
    process, base_url, token = _serve_contract_app(url, jwt_secret, str(policy))
    try:
        yield base_url, token
    finally:
        _stop(process)


def run_schemathesis(
    base_url: str, directory: Path, *, token: str | None, max_examples: int, max_time: int
) -> subprocess.CompletedProcess[str]:
    """One ``schemathesis run --checks all`` (fixed seed) against ``base_url``."""
    config = directory / "schemathesis.toml"
    config.write_text(_CONFIG)
    command = [
        str(_SCHEMATHESIS),
        "--no-color",
        "--config-file",
        str(config),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        "1",
        "--max-examples",
        str(max_examples),
        "--max-time",
        str(max_time),
        "--request-timeout",
        "10",
        "--report",
        "junit",
        "--report-dir",
        str(directory),
    ]
    if token is not None:
        command += ["-H", f"Authorization: Bearer {token}"]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=max_time + 120,
        check=False,
        cwd=directory,  # its cache (.schemathesis/) goes there, not into the checkout
    )


def assert_no_failures(done: subprocess.CompletedProcess[str]) -> None:
    """Schemathesis exits 0 only when no check failed and nothing errored."""
    report = done.stdout[-20000:] + done.stderr[-4000:]
    assert done.returncode == 0, f"Schemathesis found contract violations:\n{report}"
    assert "Tested: 22" in done.stdout, report  # every operation of the document ran


@pytest.mark.timeout(300)
@pytest.mark.skipif(not _SCHEMATHESIS.exists(), reason="schemathesis is not installed")
def test_contract_without_a_token(contract_gateway, tmp_path):
    """Every protected operation refuses an anonymous caller (ST401), and the rest of
    the contract holds for what an anonymous caller can reach."""
    base_url, _ = contract_gateway
    assert_no_failures(
        run_schemathesis(base_url, tmp_path, token=None, max_examples=5, max_time=60)
    )


@pytest.mark.timeout(300)
@pytest.mark.skipif(not _SCHEMATHESIS.exists(), reason="schemathesis is not installed")
def test_contract_with_the_admin_token(contract_gateway, tmp_path):
    """Every check, every phase, with an admin token."""
    base_url, token = contract_gateway
    assert_no_failures(
        run_schemathesis(base_url, tmp_path, token=token, max_examples=10, max_time=90)
    )


@pytest.mark.timeout(300)
@pytest.mark.skipif(not _SCHEMATHESIS.exists(), reason="schemathesis is not installed")
def test_contract_under_access_control(access_controlled_gateway, tmp_path):
    """The contract holds with an access policy deciding: lists filtered, denied runs
    and nodes answered 403, outputs masked."""
    base_url, token = access_controlled_gateway
    assert_no_failures(
        run_schemathesis(base_url, tmp_path, token=token, max_examples=5, max_time=45)
    )


@pytest.mark.contract_long
@pytest.mark.timeout(1800)
@pytest.mark.skipif(not _SCHEMATHESIS.exists(), reason="schemathesis is not installed")
def test_contract_long_run(contract_gateway, tmp_path):
    """More examples and time, with the admin token (``-m contract_long``)."""
    base_url, token = contract_gateway
    assert_no_failures(
        run_schemathesis(base_url, tmp_path, token=token, max_examples=100, max_time=900)
    )
