"""``ExecutionBackend``: where the gateway's runs execute, and the registry of backends.

The run executor hands each run to the backend of its workflow. A backend is one small
class: ``execute`` runs one :class:`RunRequest` to its outcome; ``start`` and ``close``
acquire and release what it holds (worker processes, connections). The built-in
backends are ``"inline"`` (on the event loop), ``"thread"`` (the gateway's run
threads, the default) and ``"process"`` (pre-started worker processes); another one is
a module that subclasses :class:`ExecutionBackend` and calls :func:`register_backend`::

    class ClusterBackend(ExecutionBackend):
        def __init__(self, setup: BackendSetup) -> None:
            self.client = connect(setup.policy)

        async def execute(self, run: RunRequest) -> RunOutcome:
            return await self.client.run(run.workflow, run.parameters, run.run_id)

    register_backend("cluster", ClusterBackend)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kailash_nb.middleware.execution._policy import RunPolicy
from kailash_nb.middleware.execution._thread_pool import RunThreads
from kailash_nb.middleware.gateway_errors import GatewayConfigurationError
from kailash_nb.runtime.events import EventBus
from kailash_nb.runtime.guard import NodeGuard
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.runtime.outcome import RunOutcome
from kailash_nb.workflow.graph import Workflow

__all__ = [
    "BackendFactory",
    "BackendSetup",
    "ExecutionBackend",
    "RunRequest",
    "backend_names",
    "check_backend_name",
    "create_backend",
    "register_backend",
]


@dataclass(frozen=True)
class RunRequest:
    """One run for a backend to execute.

    Attributes:
        workflow: the registered workflow.
        parameters: the caller's parameters, already checked against its contract.
        run_id: the id the run must be announced and recorded under.
        node_events: publish node events while the run executes (somebody may watch
            it live); without it only run events are published.
        guard: asked before each node executes (the run's access checks, from the
            executor's ``RunGate``); ``None``: no checks. A backend must have the
            engine ask it, in whatever process runs the nodes.
    """

    workflow: Workflow
    parameters: dict[str, Any]
    run_id: str
    node_events: bool
    guard: NodeGuard | None = None

    def run_on(self, runtime: LocalRuntime) -> RunOutcome:
        """Execute this run with ``runtime`` in the calling thread; how it ended."""
        return runtime.execute_outcome(
            self.workflow,
            self.parameters,
            run_id=self.run_id,
            node_events=self.node_events,
            guard=self.guard,
        )


@dataclass(frozen=True)
class BackendSetup:
    """What a backend is built from: one workflow's run policy and the gateway's
    shared parts.

    Attributes:
        policy: the workflow's validated run options (deadline, limits, definition).
        events: the gateway's bus; every run publishes its events there.
        runtime: the gateway's ``LocalRuntime`` (no deadline) publishing on ``events``.
        threads: the gateway's run threads (shared by every thread run, started on
            first use).
    """

    policy: RunPolicy
    events: EventBus
    runtime: LocalRuntime
    threads: Callable[[], RunThreads]


class ExecutionBackend(ABC):
    """Runs the gateway's runs of one workflow; subclasses implement ``execute``.

    A backend must announce each run on the gateway's bus (``started`` once its
    parameters are accepted, then how it ended), as ``LocalRuntime`` does.
    """

    @abstractmethod
    async def execute(self, run: RunRequest) -> RunOutcome:
        """Run ``run`` to its end and return how it ended.

        Raises:
            WorkflowValidationError: the run was refused before it started (bad
                parameters); nothing may have been announced.
            Exception: anything else ends the run as failed.
        """

    def start(self) -> None:  # noqa: B027 - optional hook, nothing to acquire by default
        """Acquire what runs need (worker processes...) before the gateway serves;
        idempotent, also after ``close``."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what ``start`` acquired (blocking; called off the event loop)."""


#: Builds a workflow's backend from its setup; a backend class itself qualifies.
BackendFactory = Callable[[BackendSetup], ExecutionBackend]

_BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make ``factory`` the backend called ``name`` (replacing any earlier one)."""
    _BACKENDS[name] = factory


def backend_names() -> tuple[str, ...]:
    """The names of the registered backends, sorted."""
    return tuple(sorted(_BACKENDS))


def check_backend_name(name: Any, where: str) -> None:
    """Raise ``GatewayConfigurationError`` (naming ``where``) unless ``name`` is a
    registered backend."""
    if not isinstance(name, str) or name not in _BACKENDS:
        raise GatewayConfigurationError(
            f"{where}: no execution backend is registered as {name!r:.80}; the registered "
            f"ones are {', '.join(map(repr, backend_names()))}"
        )


def create_backend(setup: BackendSetup) -> ExecutionBackend:
    """The backend named by ``setup.policy.backend``, built from ``setup``.

    Raises:
        KeyError: no backend is registered under that name.
    """
    return _BACKENDS[setup.policy.backend](setup)
