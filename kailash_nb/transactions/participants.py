"""Participants: the services a distributed transaction changes, behind one interface.

A coordinator talks to every participant through :class:`Participant`: two-phase
commit calls ``prepare`` then ``commit`` or ``abort``; a saga calls ``execute`` and, to
undo a step, ``compensate``. Every call carries a :class:`StepCall` whose
``transaction_id`` and ``step_id`` stay the same however often the call is repeated
(retries, recovery after a crash), so a participant deduplicates by them: each step
and each compensation takes effect at most once per transaction and step id.

A transaction outlives the process that started it, so the coordinator stores each
participant as a :class:`ParticipantSpec` (plain data: its kind and how to reach it)
and builds the participant from it again when recovering (:func:`resolve`). Kinds are
registered by name (:func:`register_kind`): ``"callable"`` (Python functions registered
in the process with :func:`register_callables`) comes with this module; the HTTP and
workflow-node kinds come with ``kailash_nb.nodes.transaction``::

    register_callables("inventory", prepare=reserve, commit=confirm, abort=release)
    spec = ParticipantSpec("inventory", "callable", supports_2pc=True, supports_saga=False)
    participant = resolve(spec)
    vote = participant.prepare(StepCall("tx-1", "tx-1/inventory", "inventory", {}, 1))
"""

from __future__ import annotations

import dataclasses
import enum
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "OPERATIONS",
    "CallableParticipant",
    "Participant",
    "ParticipantError",
    "ParticipantSpec",
    "PermanentParticipantError",
    "StepCall",
    "UnknownParticipantError",
    "Vote",
    "register_callables",
    "register_kind",
    "resolve",
]


class Vote(str, enum.Enum):
    """A participant's answer to ``prepare``. Anything else a participant answers,
    including nothing, counts as ``ABORT``."""

    PREPARED = "prepared"
    ABORT = "abort"


@dataclasses.dataclass(frozen=True)
class StepCall:
    """One call to a participant.

    Attributes:
        transaction_id: the transaction.
        step_id: the step within it; the same on every retry and after recovery.
        participant_id: the participant called.
        context: the transaction's context (read-only).
        attempt: 1 for the first try of this call, then 2, 3...
    """

    transaction_id: str
    step_id: str
    participant_id: str
    context: Mapping[str, Any]
    attempt: int = 1

    def payload(self) -> dict[str, Any]:
        """The call as JSON-ready data (what an HTTP participant receives)."""
        return {
            "transaction_id": self.transaction_id,
            "step_id": self.step_id,
            "participant_id": self.participant_id,
            "context": dict(self.context),
            "attempt": self.attempt,
        }


class ParticipantError(Exception):
    """A participant call failed in a way another attempt may fix (unreachable,
    timed out, a 5xx): the coordinator retries it with backoff."""


class PermanentParticipantError(ParticipantError):
    """A participant call failed for good (refused, a 4xx, a bad answer): retrying
    cannot help. A forward saga step that fails so is compensated; a compensation
    that fails so ends the transaction ``compensation_failed``."""


class UnknownParticipantError(LookupError):
    """A participant spec names a kind, or a callable participant, this process does
    not know (register it before recovering transactions that use it)."""


@dataclasses.dataclass(frozen=True)
class ParticipantSpec:
    """A participant as stored with its transaction: enough to reach it again.

    Attributes:
        id: the participant's id within the transaction (``"crm_service"``).
        kind: how to reach it: ``"callable"``, ``"http"``, ``"node"`` or another
            registered kind.
        supports_2pc: it can prepare, commit and abort (the seed's ``"2pc"``).
        supports_saga: it can execute and compensate (the seed's ``"saga"``).
        options: what the kind needs (an HTTP endpoint and timeout, a node type and
            config...), JSON-ready.
    """

    id: str
    kind: str
    supports_2pc: bool = True
    supports_saga: bool = True
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or len(self.id) > 128:
            raise ValueError(f"a participant id is a string of 1-128 characters, got {self.id!r}")
        if not isinstance(self.kind, str) or not self.kind:
            raise ValueError(f"participant {self.id!r}: kind must be a non-empty string")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    def to_dict(self) -> dict[str, Any]:
        """The spec as stored (JSON-ready)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "2pc": self.supports_2pc,
            "saga": self.supports_saga,
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParticipantSpec:
        """A spec from ``to_dict``'s form; the seed's ``{"id", "2pc", "saga"}`` dicts
        read the same, with ``kind`` and ``options`` added.

        Raises:
            ValueError: a missing id or kind, or a capability that is not a bool.
        """
        for flag in ("2pc", "saga"):
            if flag in data and not isinstance(data[flag], bool):
                raise ValueError(f"participant {data.get('id')!r}: {flag!r} must be true or false")
        return cls(
            id=data.get("id", ""),
            kind=data.get("kind", ""),
            supports_2pc=data.get("2pc", True),
            supports_saga=data.get("saga", True),
            options=data.get("options") or {},
        )


class Participant(ABC):
    """What a coordinator calls. Every method gets the same ``StepCall`` on each retry
    of one step and must deduplicate by ``(transaction_id, step_id)``.

    Raises (every method):
        ParticipantError: a failure another attempt may fix.
        PermanentParticipantError: a failure no attempt will fix.
    """

    def __init__(self, spec: ParticipantSpec) -> None:
        self.spec = spec

    @property
    def id(self) -> str:
        """The participant's id."""
        return self.spec.id

    @abstractmethod
    def prepare(self, call: StepCall) -> Vote:
        """Two-phase commit, phase one: make the change durable but invisible, and vote."""

    @abstractmethod
    def commit(self, call: StepCall) -> None:
        """Two-phase commit: make the prepared change visible (idempotent)."""

    @abstractmethod
    def abort(self, call: StepCall) -> None:
        """Two-phase commit: drop the prepared change, or nothing if none (idempotent)."""

    @abstractmethod
    def execute(self, call: StepCall) -> Any:
        """Saga: do the step; return its JSON-ready result (idempotent)."""

    @abstractmethod
    def compensate(self, call: StepCall) -> None:
        """Saga: undo the step; a no-op (recorded, so a late ``execute`` is refused)
        when the step never ran (idempotent)."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the participant holds (connections); the coordinator calls it
        when it is done with the transaction."""


_Function = Callable[[StepCall], Any]
#: The operations of the participant interface, in protocol order.
OPERATIONS = ("prepare", "commit", "abort", "execute", "compensate")


class CallableParticipant(Participant):
    """A participant made of Python functions, each taking the ``StepCall``; the spec's
    ``options["name"]`` (default: its id) names the functions registered with
    :func:`register_callables`. An operation without a function raises
    ``PermanentParticipantError``; an exception a function raises is transient
    unless it is a ``PermanentParticipantError``."""

    def __init__(self, spec: ParticipantSpec) -> None:
        super().__init__(spec)
        name = str(spec.options.get("name", spec.id))
        with _LOCK:
            functions = _CALLABLES.get(name)
        if functions is None:
            raise UnknownParticipantError(
                f"participant {spec.id!r}: no callables registered as {name!r} in this "
                "process (register_callables(name, ...) before running or recovering)"
            )
        self._functions = functions

    def _call(self, operation: str, call: StepCall) -> Any:
        function = self._functions.get(operation)
        if function is None:
            raise PermanentParticipantError(f"participant {self.id!r} has no {operation} function")
        try:
            return function(call)
        except ParticipantError:
            raise
        except Exception as error:
            raise ParticipantError(f"{type(error).__name__}: {error}") from error

    def prepare(self, call: StepCall) -> Vote:
        """The ``prepare`` function's vote (anything but a ``PREPARED`` vote is ABORT)."""
        answer = self._call("prepare", call)
        return Vote.PREPARED if answer in (Vote.PREPARED, "prepared") else Vote.ABORT

    def commit(self, call: StepCall) -> None:
        """Call the ``commit`` function."""
        self._call("commit", call)

    def abort(self, call: StepCall) -> None:
        """Call the ``abort`` function."""
        self._call("abort", call)

    def execute(self, call: StepCall) -> Any:
        """The ``execute`` function's result."""
        return self._call("execute", call)

    def compensate(self, call: StepCall) -> None:
        """Call the ``compensate`` function."""
        self._call("compensate", call)


_LOCK = threading.Lock()
_CALLABLES: dict[str, dict[str, _Function]] = {}
_KINDS: dict[str, Callable[[ParticipantSpec], Participant]] = {}


def register_callables(name: str, **functions: _Function) -> None:
    """Make the functions (``prepare``, ``commit``, ``abort``, ``execute``,
    ``compensate``; each takes a ``StepCall``) the callable participant ``name``,
    replacing any earlier registration.

    Raises:
        TypeError: an unknown operation name, or a value that is not callable.
    """
    for operation, function in functions.items():
        if operation not in OPERATIONS:
            raise TypeError(
                f"unknown participant operation {operation!r}; the operations are "
                + ", ".join(OPERATIONS)
            )
        if not callable(function):
            raise TypeError(f"{operation} must be callable, got {type(function).__name__}")
    with _LOCK:
        _CALLABLES[name] = dict(functions)


def register_kind(kind: str, factory: Callable[[ParticipantSpec], Participant]) -> None:
    """Build participants of ``kind`` with ``factory`` (replacing any earlier one)."""
    with _LOCK:
        _KINDS[kind] = factory


def resolve(spec: ParticipantSpec) -> Participant:
    """The participant ``spec`` describes.

    Raises:
        UnknownParticipantError: its kind is not registered (for ``"http"`` and
            ``"node"``: import ``kailash_nb.nodes.transaction``), or a callable
            participant's functions are not.
    """
    with _LOCK:
        factory = _KINDS.get(spec.kind)
    if factory is None:
        raise UnknownParticipantError(
            f"participant {spec.id!r} is of kind {spec.kind!r}, which is not registered "
            f"(known: {', '.join(sorted(_KINDS))}; the http and node kinds come with "
            "kailash_nb.nodes.transaction)"
        )
    return factory(spec)


register_kind("callable", CallableParticipant)
