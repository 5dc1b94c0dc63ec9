"""The rules of a policy indexed for one decision's look-ups.

A rule is filed under its action, workflow (or ``"*"``), node and field (``None`` above
its level, or ``"*"``) and subject (every caller, a user, a role). Within a slot, rules
with nothing left to check (no tenant, expiry or condition, and one subject) are kept
as their ids alone, so a decision over a large role-based policy costs a few look-ups
rather than a pass over every rule.
"""

from __future__ import annotations

from collections.abc import Iterable

from kailash_nb.access_control._compiled import CompiledRule
from kailash_nb.access_control.model import Action

__all__ = ["RuleIndex", "Slot"]

Target = tuple[Action, str, str | None, str | None]


class Slot:
    """The rules of one target and subject, by what a decision has to do with them.

    ``denies`` and ``allows`` are the ids of rules with nothing left to check (no
    tenant, expiry or condition, and one subject); ``checked_denies`` and
    ``checked_allows`` the other deny rules and unconditional allow rules;
    ``conditional_allows`` the allow rules with a condition (evaluated only when they
    can decide).
    """

    __slots__ = ("allows", "checked_allows", "checked_denies", "conditional_allows", "denies")

    def __init__(self) -> None:
        self.denies: tuple[str, ...] = ()
        self.allows: tuple[str, ...] = ()
        self.checked_denies: tuple[CompiledRule, ...] = ()
        self.checked_allows: tuple[CompiledRule, ...] = ()
        self.conditional_allows: tuple[CompiledRule, ...] = ()

    def add(self, rule: CompiledRule) -> None:
        """File ``rule`` (its target and subject are this slot's)."""
        if rule.condition is None and not rule.scoped:
            if rule.deny:
                self.denies = (*self.denies, rule.id)
            else:
                self.allows = (*self.allows, rule.id)
        elif rule.deny:
            self.checked_denies = (*self.checked_denies, rule)
        elif rule.condition is None:
            self.checked_allows = (*self.checked_allows, rule)
        else:
            self.conditional_allows = (*self.conditional_allows, rule)


class _Subjects:
    __slots__ = ("anyone", "by_role", "by_user")

    def __init__(self) -> None:
        self.anyone: Slot | None = None
        self.by_role: dict[str, Slot] = {}
        self.by_user: dict[str, Slot] = {}

    def add(self, rule: CompiledRule) -> None:
        if rule.user_id is not None:
            slot = self.by_user.setdefault(rule.user_id, Slot())
        elif rule.role is not None:
            slot = self.by_role.setdefault(rule.role, Slot())
        else:
            if self.anyone is None:
                self.anyone = Slot()
            slot = self.anyone
        slot.add(rule)

    def collect(self, user_id: str, roles: frozenset[str], into: list[Slot]) -> None:
        if self.anyone is not None:
            into.append(self.anyone)
        found = self.by_user.get(user_id)
        if found is not None:
            into.append(found)
        by_role = self.by_role
        if by_role:
            for role in roles:
                found = by_role.get(role)
                if found is not None:
                    into.append(found)


class RuleIndex:
    """Rules by target and subject, and the field deny rules that mask a node's output."""

    def __init__(self, rules: Iterable[CompiledRule]) -> None:
        self._targets: dict[Target, _Subjects] = {}
        self._masks: dict[tuple[str, str], tuple[CompiledRule, ...]] = {}
        for rule in rules:
            target = (rule.action, rule.workflow, rule.node, rule.field)
            self._targets.setdefault(target, _Subjects()).add(rule)
            if rule.level == 2 and rule.deny and rule.action is Action.READ_OUTPUT:
                place = (rule.workflow, rule.node)
                self._masks[place] = (*self._masks.get(place, ()), rule)

    def slots(
        self,
        action: Action,
        workflow_id: str | None,
        node_id: str | None,
        field: str | None,
        user_id: str,
        roles: frozenset[str],
    ) -> list[Slot]:
        """The slots whose rules cover this request (the resource and its ancestors)."""
        found: list[Slot] = []
        targets = self._targets
        for workflow in _either(workflow_id):
            subjects = targets.get((action, workflow, None, None))
            if subjects is not None:
                subjects.collect(user_id, roles, found)
            if node_id is None:
                continue
            for node in _either(node_id):
                subjects = targets.get((action, workflow, node, None))
                if subjects is not None:
                    subjects.collect(user_id, roles, found)
                if field is None:
                    continue
                for name in _either(field):
                    subjects = targets.get((action, workflow, node, name))
                    if subjects is not None:
                        subjects.collect(user_id, roles, found)
        return found

    def masks(self, workflow_id: str | None, node_id: str) -> list[CompiledRule]:
        """The field deny rules (read_output) of this node, any subject."""
        found: list[CompiledRule] = []
        for workflow in _either(workflow_id):
            for node in _either(node_id):
                found.extend(self._masks.get((workflow, node), ()))
        return found


def _either(name: str | None) -> tuple[str, ...]:
    if name is None or name == "*":
        return ("*",)
    return (name, "*")
