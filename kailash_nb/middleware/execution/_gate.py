"""``RunGate``: what decides, around each gateway run, whether the caller may run it
and what the caller may see of it.

The run executor asks its gate before a run (``admit``: the run's node guard, or an
exception refusing the run), hands the guard to the workflow's execution backend,
which makes the engine ask it before each node, and gives the gate the run's outcome
(``release``: the outcome as the caller may see it). Every backend runs under the same
gate, so access control is one object, not a branch in each backend:

- :data:`OPEN`: every caller runs every workflow and sees every output (a gateway
  without access control);
- :class:`PolicyGate`: an ``AccessControlledRuntime`` decides and audits, with the
  tenant, roles and claims of the caller's verified token.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from kailash_nb.access_control import Action, UserContext
from kailash_nb.middleware.identity import Identity
from kailash_nb.runtime.access_controlled import AccessControlledRuntime, RunAccess
from kailash_nb.runtime.guard import NodeGuard
from kailash_nb.runtime.outcome import RunOutcome

__all__ = ["OPEN", "OpenGate", "PolicyGate", "RunGate"]

_T = TypeVar("_T")


class RunGate(ABC):
    """Admits runs and shows their outcomes to their callers.

    Attributes:
        redacts_outputs: outcomes may show node outputs withheld and fields masked
            (the published results schemas must admit it).
    """

    redacts_outputs = False

    @abstractmethod
    async def admit(self, caller: Identity, name: str, run_id: str) -> NodeGuard | None:
        """The guard of run ``run_id`` of the workflow registered as ``name`` by
        ``caller`` (``None``: no node checks).

        Raises:
            AccessDeniedError: the caller may not execute the workflow.
            AuditUnavailableError: the decision could not be audited.
        """

    @abstractmethod
    async def release(self, guard: NodeGuard | None, outcome: RunOutcome) -> RunOutcome:
        """``outcome`` as the caller of the run ``guard`` guarded may see it.

        Raises:
            AuditUnavailableError: the run could not be audited (withhold the results).
        """

    @abstractmethod
    async def abandon(self, guard: NodeGuard | None, status: str) -> None:
        """The run ``guard`` guarded ended with an exception, as ``status``."""

    @abstractmethod
    async def executable(self, caller: Identity, names: Iterable[str]) -> list[str]:
        """The workflows of ``names`` the caller may execute, in their order."""

    def refused_node(self, guard: NodeGuard | None) -> str | None:
        """The node the run's checks refused (its run failed there), or ``None``."""
        return None


class OpenGate(RunGate):
    """No access control: every run is admitted and shown whole."""

    async def admit(self, caller: Identity, name: str, run_id: str) -> NodeGuard | None:
        """No guard: every node runs."""
        return None

    async def release(self, guard: NodeGuard | None, outcome: RunOutcome) -> RunOutcome:
        """``outcome`` unchanged."""
        return outcome

    async def abandon(self, guard: NodeGuard | None, status: str) -> None:
        """Nothing to note."""

    async def executable(self, caller: Identity, names: Iterable[str]) -> list[str]:
        """Every name."""
        return list(names)


#: The gate of a gateway without access control.
OPEN = OpenGate()


class PolicyGate(RunGate):
    """Runs decided and audited by ``runtime``'s policy, for the token's caller.

    The caller's ``UserContext`` is the verified token's subject, tenant, roles and
    other claims (as ``attributes``) with the client's address; the resource is the
    workflow's registered name, so a policy names workflows as the gateway serves them.
    """

    redacts_outputs = True

    def __init__(self, runtime: AccessControlledRuntime) -> None:
        self.runtime = runtime
        # A runtime that stores each decision before answering blocks on its database:
        # its calls go to a thread, so the gateway's event loop serves on meanwhile.
        self._blocking = runtime.audit_trail is not None and runtime.audit_write == "sync"

    @staticmethod
    def user(caller: Identity) -> UserContext:
        """The policy's view of ``caller``."""
        return UserContext(
            user_id=caller.subject,
            tenant_id=caller.tenant_id,
            roles=caller.roles,
            attributes=caller.attributes,
            ip_address=caller.address,
        )

    async def admit(self, caller: Identity, name: str, run_id: str) -> NodeGuard | None:
        """The run's access checks, once the caller may execute ``name`` (see
        ``AccessControlledRuntime.open_run`` for what it raises)."""
        return await self._call(self.runtime.open_run, self.user(caller), name, run_id)

    async def release(self, guard: NodeGuard | None, outcome: RunOutcome) -> RunOutcome:
        """The outputs the caller may read, masked fields redacted; audited."""
        return await self._call(self.runtime.close_run, _access(guard), outcome)

    async def abandon(self, guard: NodeGuard | None, status: str) -> None:
        """Audit the run's decisions and its end."""
        await self._call(self.runtime.abandon_run, _access(guard), status)

    async def executable(self, caller: Identity, names: Iterable[str]) -> list[str]:
        """The names the caller may execute; the decisions audited in one write."""
        names = list(names)
        check = self.runtime.check_workflows
        decisions = await self._call(check, names, Action.EXECUTE, self.user(caller))
        return [name for name, decision in zip(names, decisions, strict=True) if decision.allowed]

    def refused_node(self, guard: NodeGuard | None) -> str | None:
        """The node the policy refused in the run, if any."""
        return _access(guard).refused_node

    async def _call(self, function: Callable[..., _T], *args: Any) -> _T:
        if self._blocking:
            return await asyncio.to_thread(function, *args)
        return function(*args)


def _access(guard: NodeGuard | None) -> RunAccess:
    if not isinstance(guard, RunAccess):
        raise TypeError(f"a PolicyGate run's guard is a RunAccess, not {type(guard).__name__}")
    return guard
