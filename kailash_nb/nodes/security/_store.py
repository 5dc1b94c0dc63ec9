"""What the security nodes share with the gateway: the store's authentication state
(TOTP enrolments, login throttle, auth events), one per database URL in this process,
and the checks of the nodes' configuration values."""

from __future__ import annotations

import math
import threading
from typing import Any

from kailash_nb.sdk_exceptions import NodeConfigurationError
from kailash_nb.security import AuthState

__all__ = ["auth_state", "optional_text", "positive_number"]

_STATES: dict[str | None, AuthState] = {}
_STATES_LOCK = threading.Lock()


def auth_state(database_url: str | None) -> AuthState:
    """The authentication state in the store at ``database_url`` (``None``: the
    default store, ``KAILASH_NB_DATABASE_URL``, as the gateway's), opened and migrated
    once per process.

    Raises:
        StoreConfigurationError: a bad URL or a newer schema.
    """
    with _STATES_LOCK:
        state = _STATES.get(database_url)
        if state is None:
            state = _STATES[database_url] = AuthState(database_url)
        return state


def positive_number(node_id: str, name: str, value: Any, *, integer: bool = False) -> float:
    """``value`` if it is a finite number above 0 (an int when ``integer``).

    Raises:
        NodeConfigurationError: anything else, naming the node and the key.
    """
    kinds = (int,) if integer else (int, float)
    if (
        isinstance(value, bool)
        or not isinstance(value, kinds)
        or not math.isfinite(value)
        or value <= 0
    ):
        kind = "a whole number" if integer else "a number"
        raise NodeConfigurationError(
            f"node {node_id!r}: {name} must be {kind} above 0, got {value!r:.60}"
        )
    return value


def optional_text(node_id: str, name: str, value: Any) -> str | None:
    """``value`` if it is ``None`` or a non-empty string.

    Raises:
        NodeConfigurationError: anything else, naming the node and the key.
    """
    if value is None or (isinstance(value, str) and value):
        return value
    raise NodeConfigurationError(f"node {node_id!r}: {name} must be a non-empty string")
