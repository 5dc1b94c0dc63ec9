"""Fixtures of the notebook tests: an in-process IPython shell with the extension loaded."""

from __future__ import annotations

import sys

import pytest
from IPython.core.interactiveshell import InteractiveShell


@pytest.fixture(scope="module")
def shell():
    """An ``InteractiveShell`` with ``%load_ext kailash_nb`` for the module; the extension
    is unloaded at its end.

    The shell makes its user namespace the process's ``__main__``, and its ``reset()``
    clears that namespace, ``__spec__`` included, which every process multiprocessing
    starts afterwards reads (dask's nanny restarting a worker, say). The test process's
    own ``__main__`` is put back at the end, so later tests run in the process pytest
    started.
    """
    main = sys.modules["__main__"]
    shell = InteractiveShell.instance()
    shell.run_cell("%load_ext kailash_nb", store_history=False)
    yield shell
    shell.run_cell("%unload_ext kailash_nb", store_history=False)
    sys.modules["__main__"] = main
