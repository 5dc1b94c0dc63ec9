"""The transaction nodes: ``DistributedTransactionManagerNode`` (the pattern chosen per
transaction), ``SagaCoordinatorNode`` and ``TwoPhaseCommitCoordinatorNode``.

Each run performs one ``operation`` on a :class:`~kailash_nb.transactions.TransactionManager`
over the durable log the node's configuration names, so a transaction created in one run
(or one process) is executed, inspected or recovered in another by its
``transaction_id``::

    builder.add_node("DistributedTransactionManagerNode", "dtm", {
        "transaction_name": "order",
        "state_storage": "database",
        "storage_config": {"connection_string": "postgresql://db/app",
                           "table_name": "order_transactions"},
    })
    # run with {"dtm": {"operation": "create_transaction", "requirements": {...}}}
    # -> {"transaction_id": ..., "selected_pattern": "two_phase_commit" | "saga", ...}

Operations: ``create_transaction``, ``add_participant``, ``execute_transaction``,
``get_status``, ``abort_transaction``, ``recover_transaction``, ``recover_pending``,
``list_transactions``; the saga and two-phase nodes also take Kailash's names for them
(``create_saga``, ``add_step``, ``execute_saga``, ``cancel``, ``resume``, ``list_sagas``;
``begin_transaction``). Every output carries ``status``: ``"success"`` only for an
operation that did what it says (a transaction ``committed`` or ``completed`` by
``execute_transaction``); an execution that ended otherwise says how
(``"aborted"``, ``"compensated"``, ``"compensation_failed"``, ``"in_doubt"``), and an
operation that could not be done raises.

The tenant and principal that scope idempotency keys are configuration (set by the
workflow's author, never inputs a caller could forge); an ``idempotency_key`` is refused
by a node without a ``tenant_id`` config, so callers never share a key space by default.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import register_node
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError, close_matches
from kailash_nb.transactions import (
    ParticipantSpec,
    TransactionManager,
    TransactionRecord,
)

__all__ = [
    "PATTERN_NAMES",
    "DistributedTransactionManagerNode",
    "SagaCoordinatorNode",
    "TwoPhaseCommitCoordinatorNode",
]

#: How the nodes name the engine's patterns (Kailash's names).
PATTERN_NAMES = {"two_phase": "two_phase_commit", "saga": "saga"}
_ENGINE_PATTERNS = {"two_phase_commit": "two_phase", "two_phase": "two_phase", "saga": "saga"}
#: What ``status`` says for each final (or in-doubt) state of an executed transaction.
_OUTCOMES = {"committed": "success", "completed": "success"}
_STORAGES = ("database", "memory")

_MANAGERS: dict[tuple[str | None, str | None], TransactionManager] = {}
_MANAGERS_LOCK = threading.Lock()


def _manager(store_url: str | None, table_name: str | None) -> TransactionManager:
    """One manager per log in this process (its engine and settings are shared)."""
    key = (store_url, table_name)
    with _MANAGERS_LOCK:
        manager = _MANAGERS.get(key)
        if manager is None:
            manager = _MANAGERS[key] = TransactionManager(store_url, table_name=table_name)
        return manager


def _parameter(name: str, kind: Any, description: str, default: Any = None) -> NodeParameter:
    return NodeParameter(
        name=name, type=kind, required=False, default=default, description=description
    )


def participant_spec(data: ParticipantSpec | Mapping[str, Any]) -> ParticipantSpec:
    """A participant from the forms the nodes accept: a ``ParticipantSpec``, its dict
    (``{"id", "kind", "2pc", "saga", "options"}``, the seed's ``{"id", "2pc", "saga"}``
    plus how to reach it), or Kailash's (``participant_id``, ``endpoint``,
    ``supports_2pc``, ``supports_saga``, ``timeout``, ``retries``): an ``endpoint``
    without a kind makes an HTTP participant (``allow_private_network`` beside it too).

    Raises:
        NodeValidationError: none of these forms, or a participant that cannot be reached
            (no kind and no endpoint).
    """
    if isinstance(data, ParticipantSpec):
        return data
    if not isinstance(data, Mapping):
        raise NodeValidationError(
            f"a participant is a dict or a ParticipantSpec, not {type(data).__name__}"
        )
    fields = dict(data)
    if "participant_id" in fields:  # Kailash's form
        fields["id"] = fields.pop("participant_id")
        for flag, name in (("supports_2pc", "2pc"), ("supports_saga", "saga")):
            if flag in fields:
                fields[name] = fields.pop(flag)
    options = dict(fields.get("options") or {})
    for key in ("endpoint", "timeout", "retries", "allow_private_network"):
        if key in fields:
            options.setdefault(key, fields.pop(key))
    kind = fields.get("kind") or ("http" if "endpoint" in options else "")
    if not kind:
        raise NodeValidationError(
            f"participant {fields.get('id')!r} says neither how to reach it (kind: "
            "'http' with an endpoint, 'callable', 'node') nor an endpoint"
        )
    fields.update(kind=kind, options=options)
    try:
        return ParticipantSpec.from_dict(fields)
    except ValueError as error:
        raise NodeValidationError(str(error)) from None


def shown(record: TransactionRecord) -> dict[str, Any]:
    """A transaction as the nodes output it (the pattern by Kailash's names)."""
    data = record.to_dict()
    data["selected_pattern"] = PATTERN_NAMES.get(record.pattern, record.pattern)
    return data


class _TransactionNode(Node):
    """One operation per run on the durable transaction log of the node's config."""

    config_only_keys: ClassVar[frozenset[str]] = frozenset(
        {"state_storage", "storage_config", "tenant_id", "principal"}
    )
    #: The pattern every transaction of this node runs (``None``: chosen per transaction).
    forced_pattern: ClassVar[str | None] = None
    #: Kailash's operation names for this node, mapped to the manager's.
    aliases: ClassVar[Mapping[str, str]] = {}
    default_operation: ClassVar[str] = "create_transaction"

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        storage = self.config.get("state_storage", "database")
        if storage not in _STORAGES:
            raise NodeConfigurationError(
                f"node {self.id!r}: state_storage is 'database' (the run store, or "
                f"storage_config's connection_string) or 'memory', not {storage!r}"
            )
        storage_config = self.config.get("storage_config") or {}
        if not isinstance(storage_config, Mapping):
            raise NodeConfigurationError(f"node {self.id!r}: storage_config must be a dict")
        unknown = sorted(set(storage_config) - {"connection_string", "table_name"})
        if unknown:
            raise NodeConfigurationError(
                f"node {self.id!r}: unknown storage_config keys {unknown}; it takes "
                "connection_string and table_name"
            )
        self._store_url: str | None = (
            "sqlite:///:memory:" if storage == "memory" else storage_config.get("connection_string")
        )
        self._table_name: str | None = storage_config.get("table_name")
        self._tenant_id = str(self.config.get("tenant_id", "default"))
        self._principal = str(self.config.get("principal", "anonymous"))

    def get_parameters(self) -> dict[str, NodeParameter]:
        """The operation and what it reads (``state_storage``, ``storage_config``,
        ``tenant_id`` and ``principal`` are configuration only)."""
        return {
            "operation": _parameter(
                "operation", str, "what to do (create_transaction...)", self.default_operation
            ),
            "transaction_name": _parameter(
                "transaction_name", str, "the new transaction's name", "transaction"
            ),
            "transaction_id": _parameter("transaction_id", str, "the transaction acted on"),
            "requirements": _parameter(
                "requirements", dict, "consistency, availability, isolation_level, timeout"
            ),
            "context": _parameter("context", dict, "handed to every participant call"),
            "participants": _parameter("participants", list, "participants of a new one"),
            "participant": _parameter("participant", dict, "the participant to add"),
            "idempotency_key": _parameter(
                "idempotency_key", str, "one transaction per key, tenant and principal"
            ),
            "reason": _parameter("reason", str, "why a transaction is aborted"),
            "status": _parameter("status", str, "list only transactions in this status"),
            "limit": _parameter("limit", int, "list at most this many", 100),
        }

    @property
    def manager(self) -> TransactionManager:
        """The manager over this node's log (opened on first use).

        Raises:
            TransactionStoreUnavailableError: the log cannot be reached.
        """
        return _manager(self._store_url, self._table_name)

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Perform ``operation``; see the module docstring for the outputs.

        Raises:
            NodeValidationError: an unknown operation, or one missing what it needs.
            TransactionError: what the manager raises (not found, busy, a refused
                idempotency key, the store unavailable...).
        """
        operation = str(kwargs.get("operation") or self.default_operation)
        name = self.aliases.get(operation, operation)
        handler = self._operations().get(name)
        if handler is None:
            known = sorted({*self._operations(), *self.aliases})
            raise NodeValidationError(
                f"node {self.id!r}: unknown operation {operation!r}"
                f"{close_matches(operation, known)}; the operations are {', '.join(known)}"
            )
        outputs = handler(kwargs)
        outputs["operation"] = operation
        return outputs

    def _operations(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "create_transaction": self._create,
            "add_participant": self._add_participant,
            "execute_transaction": self._execute,
            "get_status": self._status,
            "abort_transaction": self._abort,
            "recover_transaction": self._recover,
            "recover_pending": self._recover_pending,
            "list_transactions": self._list,
        }

    # -- operations ---------------------------------------------------------------------

    def _create(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        requirements = dict(kwargs.get("requirements") or {})
        pattern = requirements.get("pattern") or self.forced_pattern
        if pattern is not None:
            if pattern not in _ENGINE_PATTERNS:
                raise NodeValidationError(
                    f"node {self.id!r}: requirements.pattern is two_phase_commit or saga, "
                    f"not {pattern!r}"
                )
            requirements["pattern"] = _ENGINE_PATTERNS[pattern]
        participants = [participant_spec(item) for item in kwargs.get("participants") or ()]
        key = kwargs.get("idempotency_key")
        if key is not None and "tenant_id" not in self.config:
            raise NodeValidationError(
                f"node {self.id!r}: idempotency_key needs the node's tenant_id config (the "
                "tenant the key belongs to, set by the workflow's author): without it every "
                "caller of this workflow would share one key space"
            )
        record = self.manager.create_transaction(
            str(kwargs.get("transaction_name") or "transaction"),
            requirements=requirements,
            context=kwargs.get("context") or {},
            participants=participants,
            tenant_id=self._tenant_id,
            principal=self._principal,
            idempotency_key=key,
        )
        return self._answer("success", record)

    def _add_participant(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        participant = kwargs.get("participant")
        if participant is None:
            raise NodeValidationError(f"node {self.id!r}: add_participant needs participant")
        record = self.manager.add_participant(self._id(kwargs), participant_spec(participant))
        return self._answer("success", record)

    def _execute(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return self._ended(self.manager.execute_transaction(self._id(kwargs)))

    def _status(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return self._answer("success", self.manager.get_status(self._id(kwargs)))

    def _abort(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        reason = str(kwargs.get("reason") or "aborted on request")
        record = self.manager.abort_transaction(self._id(kwargs), reason)
        return self._answer("success", record)

    def _recover(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return self._ended(self.manager.recover_transaction(self._id(kwargs)))

    def _recover_pending(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        records = self.manager.recover_pending()
        return {"status": "success", "transactions": [shown(record) for record in records]}

    def _list(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        records = self.manager.list_transactions(
            status=kwargs.get("status"), tenant_id=self._tenant_id, limit=kwargs.get("limit", 100)
        )
        return {"status": "success", "transactions": [shown(record) for record in records]}

    # -- helpers ------------------------------------------------------------------------

    def _id(self, kwargs: dict[str, Any]) -> str:
        tx_id = kwargs.get("transaction_id")
        if not isinstance(tx_id, str) or not tx_id:
            raise NodeValidationError(
                f"node {self.id!r}: operation {kwargs.get('operation')!r} needs transaction_id"
            )
        return tx_id

    def _ended(self, record: TransactionRecord) -> dict[str, Any]:
        """The answer to running a transaction: ``success`` only when it committed or
        completed; else its status (``in_doubt`` while recovery must finish it)."""
        outcome = "in_doubt" if record.in_doubt else _OUTCOMES.get(record.status, record.status)
        return self._answer(outcome, record)

    @staticmethod
    def _answer(status: str, record: TransactionRecord) -> dict[str, Any]:
        data = shown(record)
        return {
            "status": status,
            "transaction_id": record.id,
            "transaction_status": record.status,
            "selected_pattern": data["selected_pattern"],
            "transaction": data,
        }


@register_node()
class DistributedTransactionManagerNode(_TransactionNode):
    """Distributed transactions with the pattern chosen per transaction: two-phase
    commit when every participant supports it and the requirements ask for strong
    consistency, else a saga (see ``kailash_nb.transactions.select_pattern``); the
    choice is made again as participants are added. See the module docstring."""


@register_node()
class SagaCoordinatorNode(_TransactionNode):
    """Sagas: each participant's step executes in turn; a failed step compensates the
    steps before it in reverse order. Takes Kailash's operation names too."""

    forced_pattern = "saga"
    default_operation = "execute_saga"
    aliases: ClassVar[Mapping[str, str]] = {
        "create_saga": "create_transaction",
        "add_step": "add_participant",
        "execute_saga": "execute_transaction",
        "compensate": "abort_transaction",
        "cancel": "abort_transaction",
        "resume": "recover_transaction",
        "load_saga": "get_status",
        "get_history": "get_status",
        "list_sagas": "list_transactions",
    }


@register_node()
class TwoPhaseCommitCoordinatorNode(_TransactionNode):
    """Two-phase commit: every participant prepares, then all commit or all abort
    (presumed abort). Takes Kailash's operation names too."""

    forced_pattern = "two_phase_commit"
    default_operation = "begin_transaction"
    aliases: ClassVar[Mapping[str, str]] = {"begin_transaction": "create_transaction"}
