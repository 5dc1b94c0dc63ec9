"""The transaction nodes, and transaction participants reached through kailash_nb's nodes.

``DistributedTransactionManagerNode``, ``SagaCoordinatorNode`` and
``TwoPhaseCommitCoordinatorNode`` (``coordinators``) run operations on the durable
transaction log (``kailash_nb.transactions``).

Importing this package registers two participant kinds with
``kailash_nb.transactions.participants.register_kind``, so stored specs of those kinds
resolve (import it before running or recovering transactions that use them):

- ``"http"``: :class:`HttpParticipant`, a service reached by POSTing JSON to
  ``{endpoint}/{operation}``;
- ``"node"``: :class:`NodeParticipant`, whose operations
  run registered workflow nodes.

``kailash_nb.transactions.service.ParticipantService`` is a reference HTTP
participant for examples and tests.
"""

from __future__ import annotations

from kailash_nb.nodes.transaction.coordinators import (
    DistributedTransactionManagerNode,
    SagaCoordinatorNode,
    TwoPhaseCommitCoordinatorNode,
)
from kailash_nb.nodes.transaction.errors import ParticipantConfigurationError
from kailash_nb.nodes.transaction.http_participant import HttpParticipant
from kailash_nb.nodes.transaction.node_participant import NodeParticipant
from kailash_nb.transactions import participants as _participants

__all__ = [
    "DistributedTransactionManagerNode",
    "HttpParticipant",
    "NodeParticipant",
    "ParticipantConfigurationError",
    "SagaCoordinatorNode",
    "TwoPhaseCommitCoordinatorNode",
]

_participants.register_kind("http", HttpParticipant)
_participants.register_kind("node", NodeParticipant)
