"""The comm target ``kailash_nb.lab``: the Kailash JupyterLab sidebar's line to the kernel.

Importing ``kailash_nb.notebook`` calls ``register()``. Inside an IPython kernel
(``get_ipython()`` has a ``kernel``) it registers the target with the kernel's comm
manager (the ``comm`` package, which ipykernel >= 6 provides); anywhere else it does
nothing and imports neither IPython, ipykernel nor ``comm``. The sidebar looks for this
module in ``sys.modules`` (a silent probe) before it opens a comm, so its name is part
of the protocol.

The kernel's one ``LabState`` starts with the registration, so the sidebar also lists
the runs made before it connected ("Run All Cells" queues its probe behind the cells)
and after a page reload. Each comm the sidebar opens (a reloaded page opens a new one)
gets its own connection to it. A comm's messages are requests (see ``lab_requests``); the data
of its opening message may be one too (``{"request": "snapshot"}``). A closed comm is
disconnected; a send that fails (the comm closed under it) is logged and disconnects it.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from kailash_nb.notebook.lab_state import LabState

__all__ = ["TARGET", "register"]

logger = logging.getLogger(__name__)

#: The comm target name the sidebar opens.
TARGET = "kailash_nb.lab"

_state: list[LabState] = []
_state_lock = threading.Lock()


def register() -> bool:
    """Register the comm target when running inside an IPython kernel.

    Returns whether the target is registered; the kernel's ``LabState`` then follows the
    notebook from now on. A kernel whose comm manager refuses is logged (the sidebar is
    then unavailable) and does not stop the import.
    """
    ipython = sys.modules.get("IPython")  # a kernel has imported it; nothing else must
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    try:
        import comm

        comm.get_comm_manager().register_target(TARGET, _open)
    except Exception:
        logger.warning("the Kailash lab sidebar is unavailable in this kernel", exc_info=True)
        return False
    _lab_state()
    return True


def _lab_state() -> LabState:
    """The kernel's ``LabState``, started on first use."""
    with _state_lock:
        if not _state:
            state = LabState()
            state.start()
            _state.append(state)
        return _state[0]


def _open(comm: Any, message: dict[str, Any]) -> None:
    """The comm manager's callback for a new comm to ``TARGET``."""
    connection = _lab_state().connect(_CommSink(comm))
    comm.on_msg(lambda msg: connection.request(msg["content"].get("data")))
    comm.on_close(lambda _msg: connection.close())
    data = message.get("content", {}).get("data")
    if data:
        connection.request(data)


class _CommSink:
    """Sends a connection's messages on one comm."""

    def __init__(self, comm: Any) -> None:
        self._comm = comm

    def __call__(self, data: dict[str, Any]) -> None:
        # Sending on a closed comm raises nothing in ipykernel: refuse it here, so the
        # connection of a comm closed from the kernel's side is dropped too.
        if getattr(self._comm, "_closed", False):
            raise ConnectionError(f"comm {self._comm.comm_id} is closed")
        self._comm.send(data)

    def __repr__(self) -> str:
        return f"<comm {self._comm.comm_id}>"
