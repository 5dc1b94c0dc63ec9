"""Typed errors of access control: a policy that cannot load, an action that is denied."""

from __future__ import annotations

from typing import Any

from kailash_nb.sdk_exceptions import KailashException

__all__ = ["AccessControlConfigurationError", "AccessDeniedError", "PolicyError"]


class PolicyError(KailashException, ValueError):
    """A policy cannot be loaded: the message names the file, line, rule and problem.

    Raised when a policy loads (never at decision time): malformed YAML, an unknown
    key, action, operator or attribute path, a value of the wrong type, a role
    inheritance cycle, a duplicate rule id.

    Attributes:
        problem: what is wrong, in one sentence.
        source: the policies file, when the policy came from one.
        line: the 1-based line in ``source``.
        rule_id: the rule involved, when there is one.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        line: int | None = None,
        rule_id: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.line = line
        self.rule_id = rule_id
        where = []
        if source is not None:
            where.append(source if line is None else f"{source}, line {line}")
        elif line is not None:
            where.append(f"line {line}")
        if rule_id is not None:
            where.append(f"rule {rule_id!r}")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)

    def located(self, source: str | None, line: int | None) -> PolicyError:
        """This error with ``source`` and ``line`` filled in where it had none."""
        return PolicyError(
            self.problem,
            source=self.source or source,
            line=self.line or line,
            rule_id=self.rule_id,
        )


class AccessControlConfigurationError(KailashException, ValueError):
    """Access control was asked to do something unsafe or unknown.

    For example ``enabled=False`` (access control is never switched off: add an explicit
    allow rule instead) or an unknown strategy.
    """


class AccessDeniedError(KailashException, PermissionError):
    """An action was denied; ``decision`` (the ``AccessDecision``) says by which rules.

    A ``PermissionError``, as Kailash's access-controlled runtime raises, so code that
    catches that keeps working.
    """

    def __init__(self, decision: Any, message: str | None = None) -> None:
        self.decision = decision
        super().__init__(message or decision.reason)
