"""``MultiFactorAuthNode``: TOTP second factors inside a workflow, over the same store as
the gateway's sign-in and ``kailash-nb users totp``.

One ``action`` per run::

    builder.add_node("MultiFactorAuthNode", "mfa", {})
    runtime.execute(workflow, parameters={"mfa": {"action": "setup", "user_id": "u-42",
                                                  "username": "alice@example.com"}})
    # -> {"secret", "provisioning_uri": "otpauth://totp/...", "backup_codes": [...], ...}
    runtime.execute(workflow, parameters={"mfa": {"action": "verify", "user_id": "u-42",
                                                  "code": "123456"}})
    # -> {"verified": True, ...}; the same code again -> {"verified": False,
    #    "reason": "invalid_code"}

Actions:

- ``setup``: a new TOTP secret (pyotp), its ``otpauth://`` provisioning URI and ten
  one-time backup codes, shown once; the store keeps the secret and hashes of the codes.
  An enrolled user is re-enrolled only with ``replace: True`` (the old secret and codes
  then stop working at once).
- ``verify``: a code for the current 30 s step or one step either side, accepted once:
  the accepted step is stored, so the same code (or an earlier one) is refused
  afterwards, by every process (checklist AUTH-28/29). ``method: "backup_code"`` uses
  up one backup code (AUTH-31). Wrong codes are counted per user in the store under the
  gateway's second-factor key: after ``rate_limit_attempts`` in ``rate_limit_window``
  seconds every code is refused for ``lockout_seconds`` (doubling with each further
  lock), right or wrong (AUTH-30), here and at the gateway's sign-in alike.
- ``disable``: drop the enrolment and backup codes.
- ``status``: whether the user is enrolled, since when, unused backup codes, and
  whether verification is locked.

A refused code is an output (``verified: False`` with ``reason``: ``invalid_code``,
``locked`` with ``retry_after``, or ``not_enrolled``), not an error, so a workflow can
branch on it. Enrolments, verifications, failures and locks are recorded as the
store's authentication events (what ``ThreatDetectionNode`` and
``ComplianceMonitorNode`` read) unless ``audit`` is ``False``.

The workflow decides who may run which action for which ``user_id``: take ``user_id``
from the authenticated caller, never from a request body, and do not keep the outputs
of ``setup`` (they hold the secret and the backup codes) in a result cache or log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import sqlalchemy as sa

from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import register_node
from kailash_nb.nodes.security._shared import auth_state, optional_text, positive_number
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeValidationError,
    close_matches,
)
from kailash_nb.security import AuthState, SecurityConfig
from kailash_nb.security.lockout import (
    LoginLockedError,
    LoginThrottle,
    ThrottleKey,
    ThrottlePolicy,
)
from kailash_nb.security.passwords import throttle_key
from kailash_nb.security.totp import SecondFactors
from kailash_nb.store.schema import auth_users

__all__ = ["MFA_ACTIONS", "MultiFactorAuthNode"]

#: The node's actions.
MFA_ACTIONS = ("setup", "verify", "disable", "status")
_METHODS = ("totp", "backup_code")
_DEFAULTS = SecurityConfig.model_fields

#: Seconds since the epoch; tests replace it to move between TOTP steps.
_clock: Callable[[], float] = time.time


def _now() -> float:
    return _clock()


def _parameter(name: str, kind: Any, description: str, default: Any = None) -> NodeParameter:
    return NodeParameter(
        name=name, type=kind, required=False, default=default, description=description
    )


@register_node()
class MultiFactorAuthNode(Node):
    """TOTP second factors (setup, verify once, disable, status) over the store shared
    with the gateway; see the module docstring.

    Every configuration key is optional.

    Args:
        database_url: the store (default: ``KAILASH_NB_DATABASE_URL`` or the default
            SQLite file, the gateway's).
        issuer: the name authenticator apps show (default ``kailash_nb``).
        rate_limit_attempts: wrong codes allowed in ``rate_limit_window`` (default 6).
        rate_limit_window: seconds over which wrong codes are counted (default 300).
        lockout_seconds: the first lock's length, doubling per further lock up to an
            hour (default 300).
        audit: record authentication events in the store (default ``True``).

    Raises:
        NodeConfigurationError: a configuration value of the wrong kind.
    """

    config_only_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "database_url",
            "issuer",
            "rate_limit_attempts",
            "rate_limit_window",
            "lockout_seconds",
            "audit",
        }
    )

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        node = self.id
        self._database_url = optional_text(node, "database_url", self.config.get("database_url"))
        issuer = self.config.get("issuer", _DEFAULTS["totp_issuer"].default)
        if not (isinstance(issuer, str) and 0 < len(issuer) <= 64 and ":" not in issuer):
            raise NodeConfigurationError(
                f"node {node!r}: issuer must be 1-64 characters without ':', got {issuer!r:.80}"
            )
        self._issuer: str = issuer
        attempts = self.config.get("rate_limit_attempts", _DEFAULTS["totp_max_failures"].default)
        window = self.config.get(
            "rate_limit_window", _DEFAULTS["totp_failure_window"].default.total_seconds()
        )
        lockout = self.config.get(
            "lockout_seconds", _DEFAULTS["login_lockout"].default.total_seconds()
        )
        longest = _DEFAULTS["login_max_lockout"].default.total_seconds()
        lockout = positive_number(node, "lockout_seconds", lockout)
        self._policy = ThrottlePolicy(
            max_failures=int(positive_number(node, "rate_limit_attempts", attempts, integer=True)),
            window=float(positive_number(node, "rate_limit_window", window)),
            lockout=float(lockout),
            max_lockout=max(float(lockout), longest),
        )
        audit = self.config.get("audit", True)
        if not isinstance(audit, bool):
            raise NodeConfigurationError(
                f"node {node!r}: audit must be True or False, got {audit!r:.40}"
            )
        self._audit: bool = audit

    def get_parameters(self) -> dict[str, NodeParameter]:
        """The action and what it reads (the configuration keys are not inputs)."""
        return {
            "action": _parameter("action", str, "setup, verify, disable or status"),
            "user_id": _parameter("user_id", str, "whose second factor (the store's user id)"),
            "username": _parameter(
                "username",
                str,
                "a gateway user's name, used to find its user id when user_id is not given, "
                "and the account label of the provisioning URI",
            ),
            "code": _parameter("code", str, "the code to verify (TOTP or backup code)"),
            "method": _parameter("method", str, "verify with 'totp' or 'backup_code'", "totp"),
            "replace": _parameter(
                "replace", bool, "setup: re-enroll a user who is already enrolled", False
            ),
        }

    # -- running ----------------------------------------------------------------------

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Perform ``action``; see the module docstring for the outputs.

        Raises:
            NodeValidationError: an unknown action or method, no user, no code to
                verify, or ``setup`` of an enrolled user without ``replace``.
            StoreConfigurationError: the store cannot be opened.
        """
        action = kwargs.get("action")
        if action not in MFA_ACTIONS:
            raise NodeValidationError(
                f"node {self.id!r}: action must be one of {', '.join(MFA_ACTIONS)}, got "
                f"{action!r:.60}{close_matches(str(action), MFA_ACTIONS)}"
            )
        user_id = self._user_id(kwargs.get("user_id"), kwargs.get("username"))
        handler = getattr(self, f"_{action}")
        outputs = handler(user_id, kwargs)
        return {"action": action, "user_id": user_id, **outputs}

    def _user_id(self, user_id: object, username: object) -> str:
        if user_id is not None:
            if not (isinstance(user_id, str) and 0 < len(user_id) <= 36):
                raise NodeValidationError(
                    f"node {self.id!r}: user_id must be a string of 1-36 characters"
                )
            return user_id
        if not isinstance(username, str) or not username:
            raise NodeValidationError(f"node {self.id!r}: give user_id (or a gateway username)")
        with self._state.engine.connect() as connection:
            found = connection.execute(
                sa.select(auth_users.c.user_id).where(
                    auth_users.c.username_key == throttle_key(username)
                )
            ).scalar()
        if found is None:
            raise NodeValidationError(
                f"node {self.id!r}: no gateway user named {username[:128]!r}; give user_id"
            )
        return found

    @property
    def _state(self) -> AuthState:
        return auth_state(self._database_url)

    @property
    def _factors(self) -> SecondFactors:
        return SecondFactors(self._state.engine, clock=_now)

    @property
    def _throttle(self) -> LoginThrottle:
        return LoginThrottle(self._state.engine, clock=_now)

    def _record(self, event: str, user_id: str, **detail: Any) -> None:
        if self._audit:
            self._state.record(
                event, subject=user_id, detail={"source": "MultiFactorAuthNode", **detail}
            )

    # -- actions ----------------------------------------------------------------------

    def _setup(self, user_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        factors = self._factors
        if factors.is_enrolled(user_id) and kwargs.get("replace") is not True:
            raise NodeValidationError(
                f"node {self.id!r}: user {user_id!r} is already enrolled; pass replace=True "
                "to give it a new secret and new backup codes (the old ones stop working)"
            )
        label = kwargs.get("username") or user_id
        enrollment = factors.enroll(user_id, str(label)[:128], issuer=self._issuer)
        self._record("mfa_enrolled", user_id, method="totp")
        return {
            "success": True,
            "method": "totp",
            "secret": enrollment.secret,
            "provisioning_uri": enrollment.provisioning_uri,
            "backup_codes": list(enrollment.backup_codes),
        }

    def _verify(self, user_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        method = kwargs.get("method") or "totp"
        if method not in _METHODS:
            raise NodeValidationError(
                f"node {self.id!r}: method must be 'totp' or 'backup_code', got {method!r:.40}"
            )
        code = kwargs.get("code")
        if code is None:
            raise NodeValidationError(f"node {self.id!r}: verify needs the code")
        factors, throttle = self._factors, self._throttle
        key = ThrottleKey("totp", user_id)
        refused = {"success": False, "verified": False, "method": method}
        if not factors.is_enrolled(user_id):
            return {**refused, "reason": "not_enrolled"}
        try:
            throttle.check([key])
        except LoginLockedError as locked:
            return {**refused, "reason": "locked", "retry_after": locked.retry_after}
        if method == "totp":
            accepted = factors.verify_totp(user_id, code)
        else:
            accepted = factors.use_backup_code(user_id, code)
        if accepted:
            throttle.reset([key])
            self._record("mfa_verified", user_id, method=method)
            return {"success": True, "verified": True, "method": method}
        self._record("second_factor_failed", user_id, method=method)
        lock = throttle.record_failure([(key, self._policy)])
        if lock > 0:
            self._record("login_locked", user_id, scope="totp")
        return {**refused, "reason": "invalid_code"}

    def _disable(self, user_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        removed = self._factors.remove(user_id)
        if removed:
            self._record("mfa_disabled", user_id)
        return {"success": True, "disabled": removed}

    def _status(self, user_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        factors = self._factors
        enrolled_at = factors.enrolled_at(user_id)
        retry_after = 0
        try:
            self._throttle.check([ThrottleKey("totp", user_id)])
        except LoginLockedError as locked:
            retry_after = locked.retry_after
        remaining = factors.unused_backup_codes(user_id)
        return {
            "success": True,
            "enrolled": enrolled_at is not None,
            "enrolled_at": enrolled_at,
            "methods": (["totp", "backup_code"] if remaining else ["totp"])
            if enrolled_at is not None
            else [],
            "backup_codes_remaining": remaining,
            "locked": retry_after > 0,
            "retry_after": retry_after,
        }
