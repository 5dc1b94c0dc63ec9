"""A policies file kept in force: loaded at start, reloaded when it changes (if asked).

A file that cannot be loaded at start is an error (the runtime refuses to start). A
reload that fails (a syntax error, a rule that does not check, the file gone) keeps the
policy in force, logs the error and remembers it in ``error``; the same broken file is
not parsed again until it changes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from kailash_nb.access_control import Policy, PolicyError, load_policy_file

__all__ = ["PolicyFile"]

logger = logging.getLogger("kailash_nb.runtime.access_controlled")

_Signature = tuple[int, int, int, int] | None


def _signature(path: str) -> _Signature:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_ctime_ns)


class PolicyFile:
    """The policy of the file at ``path``, made by ``build`` from what the file holds.

    Raises (at construction):
        PolicyError: the file is missing, unreadable or invalid (file, line, problem).
    """

    def __init__(self, path: str, strategy: str, build: Callable[[Policy], Policy]) -> None:
        self.path = path
        self._strategy = strategy
        self._build = build
        self._lock = threading.Lock()
        self._seen = _signature(path)
        self.policy = build(load_policy_file(path, strategy=strategy))
        #: The last reload's error, ``None`` after a good load.
        self.error: PolicyError | None = None

    def refresh(self) -> Policy | None:
        """Reload the file if it changed since last looked at; the new policy, or ``None``
        (unchanged, or broken: the error is logged and kept in ``error``)."""
        signature = _signature(self.path)
        if signature == self._seen:
            return None
        with self._lock:
            if signature == self._seen:
                return None
            self._seen = signature
            return self._load()

    def reload(self) -> Policy:
        """Load the file now, whether it changed or not.

        Raises:
            PolicyError: it cannot be loaded (the policy in force stays).
        """
        with self._lock:
            self._seen = _signature(self.path)
            policy = self._build(load_policy_file(self.path, strategy=self._strategy))
            self.policy, self.error = policy, None
            return policy

    def _load(self) -> Policy | None:
        try:
            policy = self._build(load_policy_file(self.path, strategy=self._strategy))
        except PolicyError as error:
            self.error = error
            logger.error("policies file not reloaded, the policy in force stays: %s", error)
            return None
        self.policy, self.error = policy, None
        logger.info("policies file %s reloaded (policy version %d)", self.path, policy.version)
        return policy
