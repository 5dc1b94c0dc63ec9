"""A coordinator process for the crash-point suite.

``python _tx_child.py STORE_URL LEDGER SCENARIO execute|recover TX_ID`` registers the
scenario's reference participants on the ledger, then executes (or recovers) the
transaction. Run with ``KAILASH_NB_TX_CRASH_POINT`` set, it dies by SIGKILL at that
point; otherwise it prints the final status.
"""

from __future__ import annotations

import sys

from _tx_ledger import Behaviour, Ledger, register

from kailash_nb.transactions import RetryPolicy, TransactionManager

#: scenario -> (requirements, participant behaviours in order)
SCENARIOS = {
    "2pc_commit": ({"pattern": "two_phase"}, [{}, {}, {}]),
    "2pc_abort": ({"pattern": "two_phase"}, [{}, {}, {"vote": "no"}]),
    "saga_ok": ({"pattern": "saga"}, [{}, {}, {}]),
    "saga_fail": ({"pattern": "saga"}, [{}, {}, {"fail_execute": "permanent"}]),
}
PARTICIPANT_IDS = ["crm", "erp", "billing"]
FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.05, commit_retry_seconds=2.0)


def scenario_specs(ledger: Ledger, scenario: str) -> tuple[dict, list]:
    """Register the participants of ``scenario``; return (requirements, specs)."""
    requirements, behaviours = SCENARIOS[scenario]
    specs = [
        register(ledger, participant_id, Behaviour(**behaviour))
        for participant_id, behaviour in zip(PARTICIPANT_IDS, behaviours, strict=True)
    ]
    return requirements, specs


def main() -> None:
    """Execute or recover one transaction as the scenario's coordinator."""
    store_url, ledger_path, scenario, mode, tx_id = sys.argv[1:6]
    scenario_specs(Ledger(ledger_path), scenario)
    manager = TransactionManager(store_url, retry=FAST_RETRY)
    if mode == "execute":
        record = manager.execute_transaction(tx_id)
    else:
        record = manager.recover_transaction(tx_id)
    print(record.status)


if __name__ == "__main__":
    main()
