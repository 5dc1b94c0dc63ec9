"""The ``"node"`` participant kind: operations run registered workflow nodes."""

from __future__ import annotations

from typing import Any

import pytest

from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import NodeRegistry
from kailash_nb.nodes.transaction import NodeParticipant, ParticipantConfigurationError
from kailash_nb.transactions.participants import (
    ParticipantError,
    ParticipantSpec,
    PermanentParticipantError,
    StepCall,
    Vote,
    resolve,
)

RECORDED: list[dict[str, Any]] = []


class TxTestContextNode(Node):
    """Declares only ``context`` and ``step_id``: gets only those of a step call."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {
            "context": NodeParameter(name="context", type=dict, required=True),
            "step_id": NodeParameter(name="step_id", type=str, required=True),
            "label": NodeParameter(name="label", type=str, required=False, default="-"),
        }

    def run(self, context: dict, step_id: str, label: str) -> dict[str, Any]:
        RECORDED.append({"context": context, "step_id": step_id, "label": label})
        return {"vote": context.get("vote"), "label": label}


class TxTestListContextNode(Node):
    """Declares ``context`` as a list, so a step call's dict is a bad input."""

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {"context": NodeParameter(name="context", type=list, required=True)}

    def run(self, context: list) -> dict[str, Any]:
        return {"result": context}


@pytest.fixture(autouse=True)
def test_nodes():
    RECORDED.clear()
    for node_class in (TxTestContextNode, TxTestListContextNode):
        NodeRegistry.register(node_class)
    yield
    for node_class in (TxTestContextNode, TxTestListContextNode):
        NodeRegistry.unregister(node_class.__name__)


def code(snippet: str) -> dict[str, Any]:
    return {"node_type": "PythonCodeNode", "config": {"code": snippet}}


def node_participant(**operations: dict[str, Any]) -> NodeParticipant:
    built = resolve(ParticipantSpec("ledger", "node", options=operations))
    assert isinstance(built, NodeParticipant)
    return built


def call(step_id: str = "tx-1/ledger", **context: Any) -> StepCall:
    return StepCall("tx-1", step_id, "ledger", context, attempt=2)


def test_a_code_node_gets_every_field_of_the_step_call():
    participant = node_participant(
        execute=code(
            "result = {'tx': transaction_id, 'step': step_id, 'who': participant_id, "
            "'amount': context['amount'], 'attempt': attempt}"
        )
    )
    assert participant.execute(call(amount=7)) == {
        "result": {"tx": "tx-1", "step": "tx-1/ledger", "who": "ledger", "amount": 7, "attempt": 2}
    }


@pytest.mark.parametrize(
    ("snippet", "vote"),
    [
        ("result = 'prepared'", Vote.PREPARED),
        ("vote = 'prepared'", Vote.PREPARED),
        ("result = 'abort'", Vote.ABORT),
        ("result = 'PREPARED'", Vote.ABORT),
        ("result = None", Vote.ABORT),
        ("result = 42", Vote.ABORT),
        ("result = {'vote': 'maybe'}", Vote.ABORT),
    ],
)
def test_prepare_votes_prepared_only_for_a_prepared_vote_or_result(snippet, vote):
    assert node_participant(prepare=code(snippet)).prepare(call()) is vote


def test_a_node_declaring_some_inputs_gets_only_those_and_its_config():
    participant = node_participant(
        prepare={"node_type": "TxTestContextNode", "config": {"label": "reserve"}},
        commit={"node_type": "TxTestContextNode"},
    )
    assert participant.prepare(call(vote="prepared")) is Vote.PREPARED
    participant.commit(call())
    assert RECORDED == [
        {"context": {"vote": "prepared"}, "step_id": "tx-1/ledger", "label": "reserve"},
        {"context": {}, "step_id": "tx-1/ledger", "label": "-"},
    ]


def test_an_operation_without_a_node_is_permanent():
    participant = node_participant(execute=code("result = 1"))
    with pytest.raises(PermanentParticipantError, match=r"no 'compensate' node.*\['execute'\]"):
        participant.compensate(call())


def test_a_node_that_raises_is_transient():
    participant = node_participant(execute=code("raise RuntimeError('ledger locked')"))
    with pytest.raises(ParticipantError, match="ledger locked") as raised:
        participant.execute(call())
    assert not isinstance(raised.value, PermanentParticipantError)


def test_a_bad_input_is_permanent():
    participant = node_participant(execute={"node_type": "TxTestListContextNode"})
    with pytest.raises(PermanentParticipantError, match="context"):
        participant.execute(call(amount=1))


def test_a_refused_http_destination_is_permanent():
    participant = node_participant(
        execute={"node_type": "HTTPRequestNode", "config": {"url": "http://127.0.0.1:9/x"}}
    )
    with pytest.raises(PermanentParticipantError, match="refused"):
        participant.execute(call())


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({}, "no operations"),
        ({"run": code("result = 1")}, "not an operation"),
        ({"exectue": code("result = 1")}, "did you mean 'execute'"),
        ({"execute": "PythonCodeNode"}, "must be"),
        ({"execute": {"config": {}}}, "must be"),
        ({"execute": {"node_type": "PythonCodeNode", "config": "x"}}, "'config' must be a dict"),
        ({"execute": {"node_type": "PythonCodeNode", "cfg": {}}}, "unknown keys"),
        ({"execute": {"node_type": "PythonCodeNod"}}, "unknown node type"),
        ({"execute": {"node_type": "PythonCodeNode"}}, "give exactly one of 'code'"),
        ({"execute": {"node_type": "TxTestContextNode", "config": {"colour": 1}}}, "colour"),
    ],
)
def test_unusable_options_are_refused_when_the_participant_is_built(options, problem):
    with pytest.raises(ParticipantConfigurationError, match=problem) as raised:
        resolve(ParticipantSpec("ledger", "node", options=options))
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, PermanentParticipantError)
