"""Login throttling in the store: failed sign-ins counted per account, per client
address and per second factor, shared by every worker process and kept across restarts.

A key that reaches its policy's ``max_failures`` inside ``window`` seconds is locked:
every attempt answers :class:`LoginLockedError` (HTTP 429 with ``Retry-After``) until
the lock ends, whatever the password. Each further lock in a row doubles, up to
``max_lockout``. Keys are stored as SHA-256 digests, never as usernames or addresses::

    throttle = LoginThrottle(engine)
    policy = ThrottlePolicy(max_failures=10, window=900, lockout=300, max_lockout=3600)
    throttle.check([ThrottleKey("account", "alice")])        # raises LoginLockedError
    throttle.record_failure([(ThrottleKey("account", "alice"), policy)])
    throttle.reset([ThrottleKey("account", "alice")])         # after a successful sign-in
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from kailash_nb.sdk_exceptions import KailashException
from kailash_nb.store.schema import auth_login_throttle

__all__ = [
    "LoginLockedError",
    "LoginThrottle",
    "ThrottleKey",
    "ThrottlePolicy",
    "login_policies",
]

#: What a throttle key counts: failed passwords of one username, failed sign-ins of one
#: client address, wrong second-factor codes of one user.
ThrottleScope = Literal["account", "ip", "totp"]

_ATTEMPTS = 3  # inserting a fresh row can race another worker; the retry finds its row
_PRUNE_ONE_IN = 200
# Windows and locks are at most 24 h (SecurityConfig), so a row untouched this long is
# past its window, its lock and its doubling memory: it means what no row means.
_DEAD_AFTER = 3 * 24 * 3600.0


class LoginLockedError(KailashException):
    """Sign-ins are locked for now: too many recent failures for this account, client
    address or second factor. The same for a known and an unknown username.

    Attributes:
        retry_after: whole seconds until the lock ends (at least 1).
    """

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many failed sign-ins; try again in {retry_after} s (the wait doubles with "
            "each further lock)"
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures a key may have in ``window`` seconds, and how long it is locked.

    The first lock lasts ``lockout`` seconds; each following lock doubles, up to
    ``max_lockout``. The doubling starts over once a key has been quiet (no failure)
    for ``max_lockout`` seconds after its last lock ended.
    """

    max_failures: int
    window: float
    lockout: float
    max_lockout: float


@dataclass(frozen=True)
class ThrottleKey:
    """One counted thing: ``scope`` and its identifier (username key, address, user id)."""

    scope: ThrottleScope
    value: str

    @property
    def digest(self) -> str:
        """The stored form of ``value``: its SHA-256 hex digest."""
        return hashlib.sha256(self.value.encode("utf-8", "surrogatepass")).hexdigest()


def login_policies(config: Any) -> dict[ThrottleScope, ThrottlePolicy]:
    """The policy of each scope from a ``SecurityConfig``'s ``login_*``/``totp_*`` fields."""
    lockout = config.login_lockout.total_seconds()
    longest = config.login_max_lockout.total_seconds()
    window = config.login_failure_window.total_seconds()
    return {
        "account": ThrottlePolicy(config.login_max_failures, window, lockout, longest),
        "ip": ThrottlePolicy(config.login_max_failures_per_ip, window, lockout, longest),
        "totp": ThrottlePolicy(
            config.totp_max_failures, config.totp_failure_window.total_seconds(), lockout, longest
        ),
    }


class LoginThrottle:
    """Failure counters and locks in the ``kailash_nb_auth_login_throttle`` table.

    Args:
        engine: the store's engine (the ``UserStore``'s).
        clock: seconds since the epoch; injectable for tests.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    def check(self, keys: Iterable[ThrottleKey]) -> None:
        """Raise if any of ``keys`` is locked now.

        Raises:
            LoginLockedError: with the longest remaining wait among the locked keys.
        """
        keys = list(keys)
        if not keys:
            return
        now = self.clock()
        table = auth_login_throttle
        condition = sa.or_(
            *(sa.and_(table.c.scope == key.scope, table.c.key == key.digest) for key in keys)
        )
        with self.engine.connect() as connection:
            until = connection.execute(
                sa.select(sa.func.max(table.c.locked_until)).where(condition)
            ).scalar()
        if until is not None and until > now:
            raise LoginLockedError(_seconds(until - now))

    def record_failure(self, keys: Iterable[tuple[ThrottleKey, ThrottlePolicy]]) -> float:
        """Count one failure against each key; lock those that reach their limit.

        Now and then (one call in ``_PRUNE_ONE_IN``) also deletes rows that no longer
        change any decision, so failures for made-up usernames do not pile up.

        Returns:
            The longest lock now in force among ``keys`` in seconds (0 if none is locked).
        """
        keys = list(keys)
        longest = 0.0
        for key, policy in keys:
            for attempt in range(_ATTEMPTS):
                try:
                    longest = max(longest, self._fail_once(key, policy))
                    break
                except sa.exc.IntegrityError:
                    if attempt == _ATTEMPTS - 1:
                        raise
        if keys and secrets.randbelow(_PRUNE_ONE_IN) == 0:
            self.prune(_DEAD_AFTER)
        return longest

    def lock(self, key: ThrottleKey, seconds: float) -> float:
        """Lock ``key`` for at least ``seconds`` from now (a longer lock in force stays),
        as if it had reached its limit: threat detection blocks an address or account.

        Returns:
            When the lock ends (seconds since the epoch).

        Raises:
            ValueError: ``seconds`` not above 0.
        """
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"a lock lasts more than 0 seconds, got {seconds!r}")
        for _ in range(_ATTEMPTS - 1):
            try:
                return self._lock_once(key, seconds)
            except sa.exc.IntegrityError:
                continue  # another worker inserted the row first; it is there now
        return self._lock_once(key, seconds)

    def reset(self, keys: Iterable[ThrottleKey]) -> None:
        """Forget the failures and locks of ``keys`` (after a successful sign-in)."""
        table = auth_login_throttle
        with self.engine.begin() as connection:
            for key in keys:
                connection.execute(
                    table.delete().where(table.c.scope == key.scope, table.c.key == key.digest)
                )

    def prune(self, older_than: float) -> int:
        """Delete rows untouched for ``older_than`` seconds whose lock has ended; the count."""
        now = self.clock()
        table = auth_login_throttle
        with self.engine.begin() as connection:
            return connection.execute(
                table.delete().where(
                    table.c.updated_at < now - older_than, table.c.locked_until <= now
                )
            ).rowcount

    def _lock_once(self, key: ThrottleKey, seconds: float) -> float:
        now = self.clock()
        table = auth_login_throttle
        where = (table.c.scope == key.scope) & (table.c.key == key.digest)
        with self.engine.begin() as connection:
            touched = connection.execute(table.update().where(where).values(updated_at=now))
            if touched.rowcount == 0:
                _insert_fresh(connection, key, now)
            current = connection.execute(sa.select(table.c.locked_until).where(where)).scalar_one()
            until = max(current, now + seconds)
            connection.execute(table.update().where(where).values(locked_until=until))
        return until

    def _fail_once(self, key: ThrottleKey, policy: ThrottlePolicy) -> float:
        now = self.clock()
        table = auth_login_throttle
        where = (table.c.scope == key.scope) & (table.c.key == key.digest)
        with self.engine.begin() as connection:
            # Write first: the row lock (PostgreSQL) or the write lock (SQLite) then
            # serialises concurrent workers until this transaction commits.
            touched = connection.execute(table.update().where(where).values(updated_at=now))
            if touched.rowcount == 0:
                _insert_fresh(connection, key, now)
            row = connection.execute(sa.select(table).where(where)).one()
            values = _after_failure(row, now, policy)
            connection.execute(table.update().where(where).values(**values))
        return max(0.0, values["locked_until"] - now)


def _insert_fresh(connection: Connection, key: ThrottleKey, now: float) -> None:
    connection.execute(
        auth_login_throttle.insert().values(
            scope=key.scope,
            key=key.digest,
            window_started_at=now,
            failures=0,
            locked_until=0.0,
            lockouts=0,
            updated_at=now,
        )
    )


def _after_failure(row: Any, now: float, policy: ThrottlePolicy) -> dict[str, Any]:
    """The row's next values after one more failure at ``now``."""
    lockouts = row.lockouts
    if lockouts and now - row.locked_until >= policy.max_lockout:
        lockouts = 0
    if now - row.window_started_at >= policy.window:
        window_started_at, failures = now, 1
    else:
        window_started_at, failures = row.window_started_at, row.failures + 1
    locked_until = row.locked_until
    if failures >= policy.max_failures:
        lockouts += 1
        duration = min(policy.lockout * 2 ** (lockouts - 1), policy.max_lockout)
        locked_until = max(locked_until, now + duration)
        window_started_at, failures = now, 0
    return {
        "window_started_at": window_started_at,
        "failures": failures,
        "locked_until": locked_until,
        "lockouts": lockouts,
        "updated_at": now,
    }


def _seconds(remaining: float) -> int:
    return max(1, math.ceil(remaining))
