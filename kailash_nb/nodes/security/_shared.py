"""What the security nodes share: the store's authentication state (TOTP enrolments,
login throttle, auth events; the gateway's), one per database URL in this process, and
the checks of their configuration values and inputs."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError
from kailash_nb.security import AuthState

__all__ = ["auth_state", "listed", "optional_text", "positive_number", "timestamp"]

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


def listed(node_id: str, name: str, value: object) -> list[Any]:
    """``value`` as a list if it is a list-like collection (not a string or a dict).

    Raises:
        NodeValidationError: anything else, naming the node and the input.
    """
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise NodeValidationError(f"node {node_id!r}: {name} must be a list")
    return list(value)


def timestamp(node_id: str, name: str, value: object) -> float:
    """``value`` as seconds since the epoch: a number, an aware ``datetime`` or an ISO
    8601 string with a timezone.

    Raises:
        NodeValidationError: anything else (a naive time too), naming the node and input.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.timestamp()
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.timestamp()
    raise NodeValidationError(
        f"node {node_id!r}: {name} must be seconds since the epoch or a timezone-aware ISO "
        f"8601 time, got {value!r:.60}"
    )
