"""The ``"node"`` participant kind: a participant whose operations are workflow nodes.

Each operation the participant supports names a registered node type and its
configuration; operations left out are not supported::

    spec = ParticipantSpec(
        "ledger", "node", supports_2pc=False,
        options={
            "execute": {"node_type": "PythonCodeNode",
                        "config": {"code": "result = {'booked': context['amount']}"}},
            "compensate": {"node_type": "PythonCodeNode",
                           "config": {"code": "result = 'released'"}},
        },
    )

Node types are looked up in the node registry (``NodeRegistry.get``), so a stored spec
can only name registered nodes, never an importable path. The nodes are built once,
when the participant is (a bad type or configuration fails then).

A call runs the operation's node with the ``StepCall``'s fields as inputs
(``transaction_id``, ``step_id``, ``participant_id``, ``context``, ``attempt``): all of
them for nodes that take any input (code nodes), else those the node declares. The
node's outputs decide:

- ``prepare``: ``Vote.PREPARED`` when the output ``vote`` (or, without one, ``result``)
  is ``"prepared"`` (a code node's ``result = "prepared"`` or ``vote = "prepared"``);
  anything else is ``Vote.ABORT`` (DTM-07).
- ``execute``: its result is the node's outputs (a dict).
- ``commit``, ``abort``, ``compensate``: the outputs are not read.

A node that raises is a transient failure (``ParticipantError``: the coordinator tries
again with the same step id, so the node must be idempotent by it), except when the
failure is a bad input or configuration, a refused HTTP destination, or a
``PermanentParticipantError``, which are permanent. A node that reports a failure in
its outputs instead of raising (``HTTPRequestNode``'s ``success=False``) has not
failed: use the ``"http"`` kind for HTTP services.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kailash_nb.nodes._ssrf import DestinationNotAllowedError
from kailash_nb.nodes.node import Node
from kailash_nb.nodes.registry import NodeRegistry
from kailash_nb.nodes.transaction.errors import ParticipantConfigurationError
from kailash_nb.sdk_exceptions import (
    KailashException,
    NodeConfigurationError,
    NodeValidationError,
    close_matches,
)
from kailash_nb.transactions.participants import (
    OPERATIONS,
    Participant,
    ParticipantError,
    ParticipantSpec,
    PermanentParticipantError,
    StepCall,
    Vote,
)

__all__ = ["NodeParticipant"]

_PERMANENT_NODE_ERRORS = (
    NodeConfigurationError,
    NodeValidationError,
    DestinationNotAllowedError,
    PermanentParticipantError,
)


class NodeParticipant(Participant):
    """A participant whose operations run registered workflow nodes; see the module
    docstring for the options and how outputs and errors are read.

    Raises:
        ParticipantConfigurationError: an option that is not an operation, an operation
            without ``node_type`` or with a ``config`` that is not a dict, an unknown
            node type, or a configuration the node rejects (when built).
    """

    def __init__(self, spec: ParticipantSpec) -> None:
        super().__init__(spec)
        self._nodes: dict[str, Node] = {
            operation: _built(spec.id, operation, definition)
            for operation, definition in _checked_options(spec).items()
        }

    def prepare(self, call: StepCall) -> Vote:
        """``Vote.PREPARED`` when the node's ``vote`` (or ``result``) output is ``"prepared"``."""
        outputs = self._run("prepare", call)
        vote = outputs.get("vote", outputs.get("result"))
        return Vote.PREPARED if vote == Vote.PREPARED.value else Vote.ABORT

    def commit(self, call: StepCall) -> None:
        """Run the ``commit`` node."""
        self._run("commit", call)

    def abort(self, call: StepCall) -> None:
        """Run the ``abort`` node."""
        self._run("abort", call)

    def execute(self, call: StepCall) -> dict[str, Any]:
        """Run the ``execute`` node; its outputs are the step's result."""
        return self._run("execute", call)

    def compensate(self, call: StepCall) -> None:
        """Run the ``compensate`` node."""
        self._run("compensate", call)

    def _run(self, operation: str, call: StepCall) -> dict[str, Any]:
        node = self._nodes.get(operation)
        if node is None:
            raise PermanentParticipantError(
                f"participant {self.id!r} (node) has no {operation!r} node; its operations "
                f"are {sorted(self._nodes)}"
            )
        payload = call.payload()
        if not node.accepts_extra_inputs:
            payload = {name: value for name, value in payload.items() if name in node.parameters}
        try:
            return node.execute(**payload)
        except Exception as error:
            message = (
                f"participant {self.id!r} (node), {operation} of step {call.step_id!r}: {error}"
            )
            if _is_permanent(error):
                raise PermanentParticipantError(message) from error
            if isinstance(error, (ParticipantError, KailashException)):
                raise ParticipantError(message) from error
            raise ParticipantError(f"{message} ({type(error).__name__})") from error


def _is_permanent(error: BaseException | None) -> bool:
    """Whether ``error``, or an error it was raised from, says no retry can help."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, _PERMANENT_NODE_ERRORS):
            return True
        seen.add(id(error))
        error = error.__cause__
    return False


def _checked_options(spec: ParticipantSpec) -> dict[str, Mapping[str, Any]]:
    problems = []
    for name, definition in spec.options.items():
        if name not in OPERATIONS:
            problems.append(
                f"option {name!r} is not an operation{close_matches(str(name), OPERATIONS)}; "
                f"the options are the operations it supports ({', '.join(OPERATIONS)})"
            )
        elif not isinstance(definition, Mapping) or not isinstance(
            definition.get("node_type"), str
        ):
            problems.append(f"{name!r} must be {{'node_type': '<registered type>', 'config': ...}}")
        elif set(definition) - {"node_type", "config"}:
            extra = sorted(set(definition) - {"node_type", "config"})
            problems.append(f"{name!r} has unknown keys {extra}; use 'node_type' and 'config'")
        elif not isinstance(definition.get("config", {}), Mapping):
            problems.append(f"{name!r}: 'config' must be a dict of the node's configuration")
    if not spec.options:
        problems.append("no operations: give at least one of " + ", ".join(OPERATIONS))
    if problems:
        raise ParticipantConfigurationError(
            f"participant {spec.id!r} (node): {'; '.join(problems)}"
        )
    return dict(spec.options)


def _built(participant_id: str, operation: str, definition: Mapping[str, Any]) -> Node:
    try:
        node_class = NodeRegistry.get(definition["node_type"])
        return node_class(
            **dict(definition.get("config") or {}), _node_id=f"{participant_id}.{operation}"
        )
    except (KailashException, TypeError, ValueError) as error:
        raise ParticipantConfigurationError(
            f"participant {participant_id!r} (node), {operation!r}: {error}"
        ) from None
