"""``ComplianceMonitorNode``: SOC 2-style control checks over the store's users, second
factors, hash-chained audit trail and authentication events.

Each run checks the controls and answers ``compliant`` (no violation) with the
violations found, each naming its control, a severity and the evidence::

    builder.add_node("ComplianceMonitorNode", "soc2_monitor", {})
    results, _ = runtime.execute(builder.build())
    results["soc2_monitor"]["compliant"]          # False
    results["soc2_monitor"]["violations"][0]
    # {"control_id": "CC6.1-MFA", "severity": "high", "title": "...",
    #  "evidence": {"user_id": ..., "username": "root", "tenant_id": "acme",
    #               "roles": ["admin"]}}

Controls (ids after the SOC 2 Trust Services Criteria they support):

- ``CC6.1-MFA``: every user holding an admin role (``admin_roles``) is enrolled in a
  second factor (``kailash-nb users totp``, ``MultiFactorAuthNode``).
- ``CC7.2-AUDIT-INTEGRITY``: each tenant's audit chain verifies: no record edited, no
  record deleted (a gap in the sequence numbers), no tail cut off before a checkpoint
  (signed checkpoints are checked with ``$KAILASH_NB_AUDIT_KEY`` when it is set;
  ``checkpoints`` kept outside the database catch a wiped tail without one).
- ``CC6.3-ACCESS-DENIED``: no subject was denied access (audit decisions ``deny``) more
  than ``denied_access_threshold - 1`` times in the window (``window_hours``): repeated
  attempts outside policy.
- ``CC6.1-KEY-ROTATION``: no key in ``keys`` (signing keys, API keys, checkpoint keys
  the caller lists with their creation time) is older than ``max_key_age_days``.

The node records nothing (opening the store creates its tables when missing).
``controls`` runs only some of them.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import sqlalchemy as sa

from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import register_node
from kailash_nb.nodes.security._shared import (
    auth_state,
    listed,
    optional_text,
    positive_number,
    timestamp,
)
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError
from kailash_nb.store import AuditTrail, Checkpoint
from kailash_nb.store.audit_records import AUDIT_KEY_ENV
from kailash_nb.store.schema import auth_totp, auth_users

__all__ = ["COMPLIANCE_CONTROLS", "ComplianceMonitorNode"]

#: Control id -> (title, severity of its violations).
COMPLIANCE_CONTROLS: dict[str, tuple[str, str]] = {
    "CC6.1-MFA": ("administrators use a second factor", "high"),
    "CC7.2-AUDIT-INTEGRITY": ("the audit trail is complete and unaltered", "critical"),
    "CC6.3-ACCESS-DENIED": ("access stays within policy", "medium"),
    "CC6.1-KEY-ROTATION": ("keys are rotated", "medium"),
}
_DEFAULT_ADMIN_ROLES = ("admin", "super_admin", "tenant_admin")
#: Most denied decisions read per run; beyond it the evidence says it was cut.
_MAX_DENIALS_READ = 10_000
_EVIDENCE_SAMPLES = 5

#: Seconds since the epoch; tests replace it.
_clock: Callable[[], float] = time.time


def _parameter(name: str, kind: Any, description: str, default: Any = None) -> NodeParameter:
    return NodeParameter(
        name=name, type=kind, required=False, default=default, description=description
    )


@register_node()
class ComplianceMonitorNode(Node):
    """SOC 2-style control checks (admins without MFA, audit-trail integrity, access
    outside policy, stale keys); see the module docstring.

    Every configuration key is optional.

    Args:
        database_url: the store (default: ``KAILASH_NB_DATABASE_URL`` or the default
            SQLite file, the gateway's).
        admin_roles: roles that make a user an administrator (default ``admin``,
            ``super_admin``, ``tenant_admin``).
        window_hours: how far back denied decisions are counted (default 24).
        denied_access_threshold: denials of one subject in the window that make a
            violation (default 5).
        max_key_age_days: oldest a listed key may be (default 90).

    Raises:
        NodeConfigurationError: a configuration value of the wrong kind.
    """

    config_only_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "database_url",
            "admin_roles",
            "window_hours",
            "denied_access_threshold",
            "max_key_age_days",
        }
    )

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        node = self.id
        self._database_url = optional_text(node, "database_url", self.config.get("database_url"))
        roles = self.config.get("admin_roles", _DEFAULT_ADMIN_ROLES)
        if isinstance(roles, str) or not all(
            isinstance(role, str) and role for role in listed(node, "admin_roles", roles)
        ):
            raise NodeConfigurationError(
                f"node {node!r}: admin_roles must be a list of role names, got {roles!r:.80}"
            )
        self._admin_roles = frozenset(roles)
        self._window = 3600 * positive_number(
            node, "window_hours", self.config.get("window_hours", 24)
        )
        self._denied_threshold = int(
            positive_number(
                node,
                "denied_access_threshold",
                self.config.get("denied_access_threshold", 5),
                integer=True,
            )
        )
        self._max_key_age = 86400 * positive_number(
            node, "max_key_age_days", self.config.get("max_key_age_days", 90)
        )

    def get_parameters(self) -> dict[str, NodeParameter]:
        """What one check reads besides the store."""
        return {
            "tenant_id": _parameter("tenant_id", str, "check only this tenant"),
            "controls": _parameter(
                "controls",
                list,
                f"the controls to check (default all: {list(COMPLIANCE_CONTROLS)})",
            ),
            "keys": _parameter(
                "keys",
                list,
                "keys to check for rotation: {'kid', 'created_at' (epoch seconds or ISO "
                "8601), 'kind'}",
            ),
            "checkpoints": _parameter(
                "checkpoints",
                list,
                "audit checkpoints kept outside the database (Checkpoint or its JSON line)",
            ),
        }

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Check the controls; see the module docstring for the outputs.

        Raises:
            NodeValidationError: an unknown control, a malformed key or checkpoint.
            AuditUnavailableError, StoreConfigurationError: the store cannot be read.
        """
        tenant_id = kwargs.get("tenant_id")
        controls = self._controls(kwargs.get("controls"))
        now = _clock()
        checks: dict[str, Callable[[], list[dict[str, Any]]]] = {
            "CC6.1-MFA": lambda: self._admins_without_mfa(tenant_id),
            "CC7.2-AUDIT-INTEGRITY": lambda: self._audit_integrity(
                tenant_id, kwargs.get("checkpoints")
            ),
            "CC6.3-ACCESS-DENIED": lambda: self._access_denied(tenant_id, now),
            "CC6.1-KEY-ROTATION": lambda: self._stale_keys(kwargs.get("keys"), now),
        }
        violations: list[dict[str, Any]] = []
        results: dict[str, dict[str, Any]] = {}
        for control in controls:
            title, severity = COMPLIANCE_CONTROLS[control]
            found = checks[control]()
            results[control] = {"title": title, "passed": not found, "violations": len(found)}
            violations.extend(
                {"control_id": control, "title": title, "severity": severity, **item}
                for item in found
            )
        return {
            "compliant": not violations,
            "violations": violations,
            "controls": results,
            "checked_at": now,
            "tenant_id": tenant_id,
        }

    def _controls(self, requested: object) -> list[str]:
        if requested is None:
            return list(COMPLIANCE_CONTROLS)
        names = list(listed(self.id, "controls", requested))
        unknown = [name for name in names if name not in COMPLIANCE_CONTROLS]
        if unknown or not names:
            raise NodeValidationError(
                f"node {self.id!r}: unknown controls {unknown}; the controls are "
                f"{', '.join(COMPLIANCE_CONTROLS)}"
            )
        return names

    # -- controls -----------------------------------------------------------------------

    def _admins_without_mfa(self, tenant_id: str | None) -> list[dict[str, Any]]:
        query = sa.select(
            auth_users.c.user_id, auth_users.c.username, auth_users.c.tenant_id, auth_users.c.roles
        ).where(~sa.exists().where(auth_totp.c.user_id == auth_users.c.user_id))
        if tenant_id is not None:
            query = query.where(auth_users.c.tenant_id == tenant_id)
        with auth_state(self._database_url).engine.connect() as connection:
            rows = connection.execute(query.order_by(auth_users.c.tenant_id, auth_users.c.username))
            admins = [row for row in rows if self._admin_roles.intersection(row.roles or ())]
        return [
            {
                "description": f"administrator {row.username!r} of tenant {row.tenant_id!r} "
                "signs in without a second factor",
                "evidence": {
                    "user_id": row.user_id,
                    "username": row.username,
                    "tenant_id": row.tenant_id,
                    "roles": sorted(row.roles),
                },
            }
            for row in admins
        ]

    def _audit_integrity(self, tenant_id: str | None, kept: object) -> list[dict[str, Any]]:
        trail = self._trail()
        checkpoints = [
            self._checkpoint(item) for item in listed(self.id, "checkpoints", kept or [])
        ]
        tenants = [tenant_id] if tenant_id is not None else trail.tenants()
        tenants = sorted(
            {*tenants, *(point.tenant_id for point in checkpoints if tenant_id is None)}
        )
        found = []
        for tenant in tenants:
            result = trail.verify(
                tenant, checkpoints=[point for point in checkpoints if point.tenant_id == tenant]
            )
            if not result.ok:
                found.append(
                    {
                        "description": f"the audit chain of tenant {tenant!r} is broken at "
                        f"record {result.first_bad_seq}: {result.reason}",
                        "evidence": {
                            "tenant_id": tenant,
                            "first_bad_seq": result.first_bad_seq,
                            "reason": result.reason,
                            "records_checked": result.records,
                            "signatures_checked": result.signed,
                        },
                    }
                )
        return found

    def _access_denied(self, tenant_id: str | None, now: float) -> list[dict[str, Any]]:
        since = now - self._window
        denials = self._trail().records(
            tenant_id=tenant_id, decision="deny", since=since, limit=_MAX_DENIALS_READ
        )
        by_subject: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for entry in denials:
            by_subject[(entry.record.tenant_id, entry.record.subject)].append(entry)
        found = []
        for (tenant, subject), entries in sorted(by_subject.items()):
            if len(entries) < self._denied_threshold:
                continue
            entries.sort(key=lambda entry: entry.seq)
            found.append(
                {
                    "description": f"{subject!r} of tenant {tenant!r} was denied access "
                    f"{len(entries)} times in {self._window / 3600:g} h",
                    "evidence": {
                        "tenant_id": tenant,
                        "subject": subject,
                        "denials": len(entries),
                        "window_start": since,
                        "read_limit_reached": len(denials) >= _MAX_DENIALS_READ,
                        "samples": [
                            {
                                "seq": entry.seq,
                                "at": entry.record.at,
                                "action": entry.record.action,
                                "resource": entry.record.resource,
                                "rule_ids": list(entry.record.rule_ids),
                            }
                            for entry in entries[:_EVIDENCE_SAMPLES]
                        ],
                    },
                }
            )
        return found

    def _stale_keys(self, keys: object, now: float) -> list[dict[str, Any]]:
        found = []
        for index, key in enumerate(listed(self.id, "keys", keys or [])):
            if not isinstance(key, Mapping) or (not key.get("kid") and not key.get("id")):
                raise NodeValidationError(
                    f"node {self.id!r}: keys[{index}] must be a dict with 'kid' and 'created_at'"
                )
            kid = str(key.get("kid") or key.get("id"))
            created = timestamp(self.id, f"keys[{index}].created_at", key.get("created_at"))
            age = now - created
            if age > self._max_key_age:
                found.append(
                    {
                        "description": f"key {kid!r} is {age / 86400:.0f} days old (rotate "
                        f"at {self._max_key_age / 86400:g})",
                        "evidence": {
                            "kid": kid,
                            "kind": key.get("kind"),
                            "created_at": created,
                            "age_days": round(age / 86400, 1),
                            "max_age_days": self._max_key_age / 86400,
                        },
                    }
                )
        return found

    # -- helpers ------------------------------------------------------------------------

    def _trail(self) -> AuditTrail:
        key = os.environ.get(AUDIT_KEY_ENV)
        try:
            return AuditTrail(self._database_url, checkpoint_key=key.encode() if key else None)
        except ValueError as error:
            raise NodeConfigurationError(f"node {self.id!r}: {AUDIT_KEY_ENV}: {error}") from None

    def _checkpoint(self, item: object) -> Checkpoint:
        if isinstance(item, Checkpoint):
            return item
        if isinstance(item, str):
            try:
                return Checkpoint.from_json(item)
            except ValueError as error:
                raise NodeValidationError(f"node {self.id!r}: checkpoints: {error}") from None
        raise NodeValidationError(
            f"node {self.id!r}: checkpoints are Checkpoint objects or their JSON lines"
        )
