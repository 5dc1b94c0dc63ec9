"""``kailash-nb tx list|show|recover``: a coordinator process running a two-phase commit
over HTTP participant services is killed right after its commit decision; the CLI shows
the transaction in doubt and recovery commits it everywhere, exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from _participant_services import three_services

from kailash_nb.cli import main

COORDINATOR = textwrap.dedent(
    """
    import json, sys
    import kailash_nb.nodes.transaction  # the http participant kind
    from kailash_nb.transactions import TransactionManager

    store, endpoints = sys.argv[1], json.loads(sys.argv[2])
    manager = TransactionManager(store)
    record = manager.create_transaction(
        "order",
        requirements={"consistency": "strong"},
        participants=[
            {"id": name, "kind": "http", "2pc": True, "saga": True,
             "options": {"endpoint": url, "allow_private_network": True, "retries": 0}}
            for name, url in endpoints.items()
        ],
    )
    print(record.id, flush=True)
    manager.execute_transaction(record.id)
    """
)


@pytest.fixture
def services(tmp_path):
    with three_services(tmp_path) as started:
        yield started


def test_a_transaction_left_in_doubt_is_listed_shown_and_recovered(tmp_path, services, capsys):
    store = f"sqlite:///{tmp_path / 'tx.db'}"
    endpoints = {service.name: service.endpoint for service in services}
    child = subprocess.run(
        [sys.executable, "-c", COORDINATOR, store, json.dumps(endpoints)],
        env={**os.environ, "KAILASH_NB_TX_CRASH_POINT": "2pc.after_decision"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    tx_id = child.stdout.split()[0]
    assert all(
        [entry["operation"] for entry in service.entries(tx_id)] == ["prepare"]
        for service in services
    )

    assert main(["tx", "list", "--status", "in_doubt", "--database-url", store]) == 0
    listed = capsys.readouterr().out
    assert tx_id in listed and "committing*" in listed

    assert main(["tx", "show", tx_id, "--database-url", store]) == 0
    shown = capsys.readouterr().out
    assert "committing (in doubt)" in shown and "decision     commit" in shown

    assert main(["tx", "recover", "--database-url", store]) == 0
    assert f"{tx_id}  order  committed" in capsys.readouterr().out
    for service in services:
        operations = [entry["operation"] for entry in service.entries(tx_id)]
        assert operations == ["prepare", "commit"], service.name

    assert main(["tx", "show", tx_id, "--json", "--database-url", store]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "committed"
    assert main(["tx", "recover", "--database-url", store]) == 0
    assert capsys.readouterr().out.strip() == "nothing to recover"


def test_recovering_an_unknown_transaction_is_an_error(tmp_path, capsys):
    store = f"sqlite:///{tmp_path / 'tx.db'}"
    assert main(["tx", "recover", "no-such-id", "--database-url", store]) == 1
    assert "no-such-id" in capsys.readouterr().err
    assert main(["tx", "list", "--status", "bogus", "--database-url", store]) == 1
    assert "unknown status 'bogus'" in capsys.readouterr().err
