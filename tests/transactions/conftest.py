"""Fixtures of the transaction tests."""

from __future__ import annotations

import pytest
from _tx_ledger import Ledger


@pytest.fixture
def ledger(tmp_path):
    """A participants' ledger in the test's directory: every effect recorded once."""
    return Ledger(tmp_path / "ledger.db")
