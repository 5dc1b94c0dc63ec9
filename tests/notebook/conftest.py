"""Fixtures of the notebook tests: an in-process IPython shell with the extension loaded."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell


@pytest.fixture(scope="module")
def shell():
    """An ``InteractiveShell`` with ``%load_ext kailash_nb`` for the module; the extension
    is unloaded at its end."""
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext kailash_nb", store_history=False)
    yield shell
    shell.run_cell("%unload_ext kailash_nb", store_history=False)
