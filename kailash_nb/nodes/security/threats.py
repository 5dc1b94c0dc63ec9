"""``ThreatDetectionNode``: attacks read from a window of authentication events.

The events are the gateway's (``login_failed``, ``login_succeeded``,
``second_factor_failed``, ``refresh_reuse_detected``, ... with the client's address),
read from the store, or given as the ``events`` input::

    builder.add_node("ThreatDetectionNode", "threats", {"block": True})
    results, _ = runtime.execute(builder.build())
    results["threats"]["threats"][0]
    # {"rule": "credential_stuffing", "severity": "high", "description": "...",
    #  "evidence": {"client_ip": "203.0.113.9", "usernames": 40, ...}}

Rules (``detection_rules`` chooses some):

- ``brute_force``: one username failing to sign in (password or second factor)
  ``brute_force_threshold`` times in the window;
- ``credential_stuffing``: one address failing for ``stuffing_threshold`` different
  usernames in the window;
- ``new_address_unusual_hour``: a successful sign-in in the window from an address the
  user never signed in from before (within ``history_days``), at an hour (UTC) more than
  an hour away from every earlier sign-in of that user; a user with no history is not
  judged;
- ``token_replay``: a refresh token presented again after its rotation (the gateway
  revoked the session and recorded ``refresh_reuse_detected``).

With ``block: True`` the node feeds the gateway's sign-in lockout (the store's login
throttle, shared by every worker): a brute-forced account and a stuffing address are
locked for ``block_seconds``, so their next sign-ins answer 429 whatever the password;
each block is recorded as a ``threat_blocked`` event. The node changes nothing else.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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
from kailash_nb.security import AuthState, SecurityConfig
from kailash_nb.security.lockout import LoginThrottle, ThrottleKey
from kailash_nb.security.passwords import throttle_key
from kailash_nb.store.schema import auth_events

__all__ = ["THREAT_RULES", "ThreatDetectionNode"]

#: Rule name -> severity of its findings.
THREAT_RULES: dict[str, str] = {
    "brute_force": "high",
    "credential_stuffing": "high",
    "new_address_unusual_hour": "medium",
    "token_replay": "critical",
}
_FAILURES = frozenset({"login_failed", "second_factor_failed"})
_SUCCESS = "login_succeeded"
_REPLAY = "refresh_reuse_detected"
#: Most stored events read per run (the newest); the output says when it was reached.
_MAX_EVENTS = 100_000
_SAMPLES = 10
_HOUR_TOLERANCE = 1
_DEFAULTS = SecurityConfig.model_fields

#: Seconds since the epoch; tests replace it.
_clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class _Event:
    at: float
    event: str
    subject: str | None
    tenant_id: str | None
    session_id: str | None
    username: str | None
    client_ip: str | None

    @property
    def who(self) -> str | None:
        """The account: its username when the event has one, else its subject."""
        return self.username or self.subject


def _parameter(name: str, kind: Any, description: str, default: Any = None) -> NodeParameter:
    return NodeParameter(
        name=name, type=kind, required=False, default=default, description=description
    )


@register_node()
class ThreatDetectionNode(Node):
    """Brute force, credential stuffing, new address at an unusual hour and token replay
    over a window of authentication events; see the module docstring.

    Every configuration key is optional.

    Args:
        database_url: the store (default: ``KAILASH_NB_DATABASE_URL`` or the default
            SQLite file, the gateway's).
        detection_rules: the rules to apply (default all of ``THREAT_RULES``).
        window_minutes: the window ending now that is judged (default 15).
        history_days: how far back earlier sign-ins are known (default 30).
        brute_force_threshold: failures of one username in the window (default 10).
        stuffing_threshold: usernames failing from one address in the window (default 5).
        block: lock brute-forced accounts and stuffing addresses in the gateway's sign-in
            throttle (default ``False``).
        block_seconds: how long a block lasts (default 300).
        audit: record ``threat_blocked`` events (default ``True``).

    Raises:
        NodeConfigurationError: a configuration value of the wrong kind.
    """

    config_only_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "database_url",
            "detection_rules",
            "window_minutes",
            "history_days",
            "brute_force_threshold",
            "stuffing_threshold",
            "block",
            "block_seconds",
            "audit",
        }
    )

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        node, get = self.id, self.config.get
        self._database_url = optional_text(node, "database_url", get("database_url"))
        rules = get("detection_rules", list(THREAT_RULES))
        if isinstance(rules, str) or not isinstance(rules, Iterable):
            raise NodeConfigurationError(f"node {node!r}: detection_rules must be a list")
        unknown = [rule for rule in rules if rule not in THREAT_RULES]
        if unknown or not rules:
            raise NodeConfigurationError(
                f"node {node!r}: unknown detection_rules {unknown}; the rules are "
                f"{', '.join(THREAT_RULES)}"
            )
        self._rules = list(rules)
        self._window = 60 * positive_number(node, "window_minutes", get("window_minutes", 15))
        self._history = 86400 * positive_number(node, "history_days", get("history_days", 30))
        brute = get("brute_force_threshold", _DEFAULTS["login_max_failures"].default)
        self._brute_threshold = int(
            positive_number(node, "brute_force_threshold", brute, integer=True)
        )
        stuffing = get("stuffing_threshold", 5)
        self._stuffing_threshold = int(
            positive_number(node, "stuffing_threshold", stuffing, integer=True)
        )
        block_seconds = get("block_seconds", _DEFAULTS["login_lockout"].default.total_seconds())
        self._block_seconds = float(positive_number(node, "block_seconds", block_seconds))
        for flag in ("block", "audit"):
            if not isinstance(get(flag, flag == "audit"), bool):
                raise NodeConfigurationError(f"node {node!r}: {flag} must be True or False")
        self._block: bool = get("block", False)
        self._audit: bool = get("audit", True)

    def get_parameters(self) -> dict[str, NodeParameter]:
        """The events to judge instead of the store's, and a tenant to judge alone."""
        return {
            "events": _parameter(
                "events",
                list,
                "auth events to judge instead of the store's: {'event', 'at' (epoch seconds "
                "or ISO 8601), 'subject', 'username', 'client_ip', 'tenant_id', 'session_id'}",
            ),
            "tenant_id": _parameter(
                "tenant_id",
                str,
                "judge only this tenant's events (failed sign-ins of unknown usernames name "
                "no tenant, so they are left out too)",
            ),
        }

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Judge the window; see the module docstring for the outputs.

        Raises:
            NodeValidationError: a malformed event.
            StoreConfigurationError: the store cannot be opened.
        """
        now = _clock()
        given = kwargs.get("events")
        if given is not None:
            events = [
                self._event(index, item)
                for index, item in enumerate(listed(self.id, "events", given))
            ]
            limit_reached = False
        else:
            events, limit_reached = self._stored_events(now)
        tenant_id = kwargs.get("tenant_id")
        if tenant_id is not None:
            events = [event for event in events if event.tenant_id == tenant_id]
        events.sort(key=lambda event: event.at)
        start = now - self._window
        recent = [event for event in events if start <= event.at <= now]
        earlier = [event for event in events if now - self._history <= event.at < start]
        rules = {
            "brute_force": lambda: self._brute_force(recent),
            "credential_stuffing": lambda: self._credential_stuffing(recent),
            "new_address_unusual_hour": lambda: self._new_address(recent, earlier),
            "token_replay": lambda: self._token_replay(recent),
        }
        threats = []
        for rule in self._rules:
            threats.extend(
                {"rule": rule, "severity": THREAT_RULES[rule], **finding}
                for finding in rules[rule]()
            )
        blocked = self._block_sources(threats) if self._block else []
        return {
            "threat_detected": bool(threats),
            "threats": threats,
            "blocked": blocked,
            "events_analyzed": len(recent),
            "window": {"start": start, "end": now},
            "event_limit_reached": limit_reached,
        }

    # -- events -------------------------------------------------------------------------

    def _stored_events(self, now: float) -> tuple[list[_Event], bool]:
        query = (
            sa.select(auth_events)
            .where(auth_events.c.at >= now - self._history)
            .order_by(auth_events.c.seq.desc())
            .limit(_MAX_EVENTS)
        )
        with auth_state(self._database_url).engine.connect() as connection:
            rows = connection.execute(query).all()
        events = []
        for row in rows:
            detail = row.detail if isinstance(row.detail, Mapping) else {}
            events.append(
                _Event(
                    at=float(row.at),
                    event=row.event,
                    subject=row.subject,
                    tenant_id=row.tenant_id,
                    session_id=row.family,
                    username=_text(detail.get("username")),
                    client_ip=_text(detail.get("client_ip")),
                )
            )
        return events, len(rows) >= _MAX_EVENTS

    def _event(self, index: int, item: object) -> _Event:
        if not isinstance(item, Mapping) or not isinstance(item.get("event"), str):
            raise NodeValidationError(
                f"node {self.id!r}: events[{index}] must be a dict with an 'event' name"
            )
        detail = item.get("detail") if isinstance(item.get("detail"), Mapping) else {}
        return _Event(
            at=timestamp(self.id, f"events[{index}].at", item.get("at")),
            event=item["event"],
            subject=_text(item.get("subject")),
            tenant_id=_text(item.get("tenant_id")),
            session_id=_text(item.get("session_id")),
            username=_text(item.get("username", detail.get("username"))),
            client_ip=_text(item.get("client_ip", detail.get("client_ip"))),
        )

    # -- rules --------------------------------------------------------------------------

    def _brute_force(self, recent: list[_Event]) -> list[dict[str, Any]]:
        by_account: dict[str, list[_Event]] = defaultdict(list)
        for event in recent:
            if event.event in _FAILURES and event.who:
                by_account[event.who].append(event)
        return [
            {
                "description": f"{len(events)} failed sign-ins for {account!r} in "
                f"{self._window / 60:g} min",
                "evidence": {
                    "username": account,
                    "failures": len(events),
                    "client_ips": sorted({e.client_ip for e in events if e.client_ip}),
                    "first_at": events[0].at,
                    "last_at": events[-1].at,
                },
            }
            for account, events in sorted(by_account.items())
            if len(events) >= self._brute_threshold
        ]

    def _credential_stuffing(self, recent: list[_Event]) -> list[dict[str, Any]]:
        by_address: dict[str, list[_Event]] = defaultdict(list)
        for event in recent:
            if event.event == "login_failed" and event.client_ip:
                by_address[event.client_ip].append(event)
        found = []
        for address, events in sorted(by_address.items()):
            names = sorted({event.who for event in events if event.who})
            if len(names) >= self._stuffing_threshold:
                found.append(
                    {
                        "description": f"address {address} failed to sign in as {len(names)} "
                        f"different users in {self._window / 60:g} min",
                        "evidence": {
                            "client_ip": address,
                            "usernames": len(names),
                            "sample_usernames": names[:_SAMPLES],
                            "failures": len(events),
                            "first_at": events[0].at,
                            "last_at": events[-1].at,
                        },
                    }
                )
        return found

    def _new_address(self, recent: list[_Event], earlier: list[_Event]) -> list[dict[str, Any]]:
        known: dict[str, set[str]] = defaultdict(set)
        hours: dict[str, set[int]] = defaultdict(set)
        for event in earlier:
            if event.event == _SUCCESS and event.subject and event.client_ip:
                known[event.subject].add(event.client_ip)
                hours[event.subject].add(_hour(event.at))
        found = []
        for event in recent:
            if event.event != _SUCCESS or not event.subject or not event.client_ip:
                continue
            user, address, hour = event.subject, event.client_ip, _hour(event.at)
            usual = hours[user]
            unusual = bool(usual) and all(_hour_distance(hour, h) > _HOUR_TOLERANCE for h in usual)
            if known[user] and address not in known[user] and unusual:
                found.append(
                    {
                        "description": f"{event.who!r} signed in from a new address {address} "
                        f"at {hour:02d}:xx UTC, an hour it never signed in at",
                        "evidence": {
                            "subject": user,
                            "username": event.username,
                            "client_ip": address,
                            "at": event.at,
                            "hour_utc": hour,
                            "known_addresses": sorted(known[user])[:_SAMPLES],
                            "usual_hours_utc": sorted(usual),
                        },
                    }
                )
            # What this window has shown becomes known for its later events.
            known[user].add(address)
            hours[user].add(hour)
        return found

    def _token_replay(self, recent: list[_Event]) -> list[dict[str, Any]]:
        return [
            {
                "description": f"a used refresh token of session {event.session_id} was "
                "presented again (stolen or replayed); the session was revoked",
                "evidence": {
                    "subject": event.subject,
                    "tenant_id": event.tenant_id,
                    "session_id": event.session_id,
                    "at": event.at,
                    "client_ip": event.client_ip,
                },
            }
            for event in recent
            if event.event == _REPLAY
        ]

    # -- blocking -----------------------------------------------------------------------

    def _block_sources(self, threats: list[dict[str, Any]]) -> list[dict[str, Any]]:
        state: AuthState = auth_state(self._database_url)
        throttle = LoginThrottle(state.engine, clock=_clock)
        blocked = []
        for threat in threats:
            evidence = threat["evidence"]
            if threat["rule"] == "brute_force":
                scope, value = "account", evidence["username"]
                key = ThrottleKey("account", throttle_key(value))
            elif threat["rule"] == "credential_stuffing":
                scope, value = "ip", evidence["client_ip"]
                key = ThrottleKey("ip", value)
            else:
                continue
            until = throttle.lock(key, self._block_seconds)
            blocked.append({"scope": scope, "value": value, "until": until, "rule": threat["rule"]})
            if self._audit:
                state.record(
                    "threat_blocked",
                    detail={"scope": scope, "value": value, "rule": threat["rule"], "until": until},
                )
        return blocked


def _text(value: object) -> str | None:
    return value[:256] if isinstance(value, str) and value else None


def _hour(at: float) -> int:
    return datetime.fromtimestamp(at, UTC).hour


def _hour_distance(first: int, second: int) -> int:
    difference = abs(first - second) % 24
    return min(difference, 24 - difference)
