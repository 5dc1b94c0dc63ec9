"""The transaction nodes: the seed's "Enterprise Transaction Management" block against a
real PostgreSQL database, and sagas and two-phase commits over real HTTP participant
services, through workflows run by the runtime."""

from __future__ import annotations

import asyncio
import os
import textwrap

import pytest
import sqlalchemy as sa
from _participant_services import three_services

from kailash_nb.nodes.transaction import (
    DistributedTransactionManagerNode,
    SagaCoordinatorNode,
    TwoPhaseCommitCoordinatorNode,
)
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    WorkflowValidationError,
)
from kailash_nb.workflow.builder import WorkflowBuilder

SEED_BLOCK = """
from kailash_nb.nodes.transaction import DistributedTransactionManagerNode

# Automatic pattern selection for enterprise transactions
workflow.add_node("DistributedTransactionManagerNode", "dtm", {
    "transaction_name": "enterprise_order_processing",
    "state_storage": "database",
    "storage_config": {
        "connection_string": "postgresql://localhost:5432/enterprise_db",
        "table_name": "enterprise_transaction_states"
    }
})

# Execute workflow with enterprise requirements
results, run_id = await runtime.execute_async(workflow.build(), parameters={
    "dtm": {
        "operation": "create_transaction",
        "requirements": {
            "consistency": "strong",        # Enterprise data consistency
            "availability": "high",         # 99.9% uptime requirement
            "timeout": 300,                # 5-minute timeout
            "isolation_level": "serializable"
        },
        "context": {
            "enterprise_id": "ENT001",
            "compliance_required": True,
            "audit_trail": True
        }
    }
})

# Add enterprise service participants
enterprise_services = [
    {"id": "crm_service", "2pc": True, "saga": True},
    {"id": "erp_service", "2pc": True, "saga": True},
    {"id": "billing_service", "2pc": False, "saga": True},  # Legacy
    {"id": "audit_service", "2pc": True, "saga": True}
]

# In a real implementation, you would add participants as part of the workflow configuration
# or via additional workflow nodes. The DTM node handles participant management internally.

print(f"Transaction ID: {results['dtm']['transaction_id']}")
print(f"Selected pattern: {results['dtm']['selected_pattern']}")
"""


@pytest.fixture
def enterprise_db(pg_url, monkeypatch):
    """The seed's ``enterprise_db`` database on the test server, created for the test;
    the seed's URL names no user, so libpq's ``PGUSER`` supplies the server's."""
    admin_url = sa.engine.make_url(pg_url).set(drivername="postgresql+psycopg")
    monkeypatch.setenv("PGUSER", admin_url.username or "postgres")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql('DROP DATABASE IF EXISTS "enterprise_db" WITH (FORCE)')
        connection.exec_driver_sql('CREATE DATABASE "enterprise_db"')
    yield "postgresql://localhost:5432/enterprise_db"
    from kailash_nb.store.database import dispose_engines

    dispose_engines()
    with admin.connect() as connection:
        connection.exec_driver_sql('DROP DATABASE IF EXISTS "enterprise_db" WITH (FORCE)')
    admin.dispose()


@pytest.mark.postgres
def test_seed_enterprise_transaction_management(enterprise_db, capsys):
    """The seed's block with ``kailash.`` -> ``kailash_nb.`` (its ``workflow`` and
    ``runtime`` come from the seed's earlier setup block), its top-level ``await`` run
    in an event loop; the transaction is stored in the seed's table."""
    namespace = {"workflow": WorkflowBuilder(), "runtime": LocalRuntime(history=False)}
    body = textwrap.indent(SEED_BLOCK, "    ")
    exec(f"async def seed_block():\n{body}\n    return results", namespace)
    results = asyncio.run(namespace["seed_block"]())
    printed = capsys.readouterr().out.splitlines()
    transaction_id = results["dtm"]["transaction_id"]
    assert printed == [
        f"Transaction ID: {transaction_id}",
        "Selected pattern: two_phase_commit",  # strong consistency, no participant yet
    ]
    engine = sa.create_engine(
        sa.engine.make_url(enterprise_db).set(drivername="postgresql+psycopg")
    )
    with engine.connect() as connection:
        stored = connection.exec_driver_sql(
            "SELECT name, status FROM enterprise_transaction_states WHERE id = %s",
            (transaction_id,),
        ).one()
    engine.dispose()
    assert tuple(stored) == ("enterprise_order_processing", "created")


# -- over HTTP participants ---------------------------------------------------------------


@pytest.fixture
def services(tmp_path):
    with three_services(tmp_path) as started:
        yield started


def participants(services, **flags):
    return [
        {
            "id": s.name,
            "kind": "http",
            "options": {"endpoint": s.endpoint, "allow_private_network": True, "retries": 0},
            **flags,
        }
        for s in services
    ]


def run_node(node_type: str, config: dict, **inputs) -> dict:
    """The one node's outputs (a failed node's: ``failed``, ``error_type``, ``error``)."""
    builder = WorkflowBuilder()
    builder.add_node(node_type, "tx", config)
    results, _ = LocalRuntime(history=False).execute(builder.build(), parameters={"tx": inputs})
    return results["tx"]


@pytest.fixture
def config(tmp_path):
    return {
        "transaction_name": "order",
        "storage_config": {"connection_string": f"sqlite:///{tmp_path / 'tx.db'}"},
    }


def test_a_two_phase_order_commits_everywhere(services, config):
    created = run_node(
        "DistributedTransactionManagerNode",
        config,
        operation="create_transaction",
        requirements={"consistency": "strong"},
        participants=participants(services),
        context={"order_id": "A-1"},
    )
    assert created["selected_pattern"] == "two_phase_commit"
    ended = run_node(
        "DistributedTransactionManagerNode",
        config,
        operation="execute_transaction",
        transaction_id=created["transaction_id"],
    )
    assert (ended["status"], ended["transaction_status"]) == ("success", "committed")
    for service in services:
        operations = [entry["operation"] for entry in service.entries(created["transaction_id"])]
        assert operations == ["prepare", "commit"], service.name


def test_a_failed_saga_step_is_compensated_and_not_reported_as_success(services, config):
    services[2].faults.fail("execute", None, status=422)  # shipping refuses for good
    created = run_node(
        "SagaCoordinatorNode",
        config,
        operation="create_saga",
        participants=participants(services),
    )
    assert created["selected_pattern"] == "saga"
    ended = run_node(
        "SagaCoordinatorNode",
        config,
        operation="execute_saga",
        transaction_id=created["transaction_id"],
    )
    assert (ended["status"], ended["transaction_status"]) == ("compensated", "compensated")
    for service in services[:2]:
        operations = [entry["operation"] for entry in service.entries(created["transaction_id"])]
        assert operations == ["execute", "compensate"], service.name
    status = run_node(
        "SagaCoordinatorNode",
        config,
        operation="get_history",
        transaction_id=created["transaction_id"],
    )
    assert status["transaction"]["status"] == "compensated"


def test_one_participant_without_two_phase_commit_means_a_saga(services, config):
    created = run_node(
        "DistributedTransactionManagerNode",
        config,
        operation="create_transaction",
        requirements={"consistency": "strong"},
    )
    tx_id = created["transaction_id"]
    assert created["selected_pattern"] == "two_phase_commit"
    legacy = {  # Kailash's form of a participant: an endpoint makes it an HTTP one
        "participant_id": "billing_service",
        "endpoint": services[1].endpoint,
        "supports_2pc": False,
        "supports_saga": True,
        "allow_private_network": True,
    }
    added = run_node(
        "DistributedTransactionManagerNode",
        config,
        operation="add_participant",
        transaction_id=tx_id,
        participant=legacy,
    )
    assert added["selected_pattern"] == "saga"
    ended = run_node(
        "DistributedTransactionManagerNode",
        config,
        operation="execute_transaction",
        transaction_id=tx_id,
    )
    assert (ended["status"], ended["transaction_status"]) == ("success", "completed")
    assert [entry["operation"] for entry in services[1].entries(tx_id)] == ["execute"]


def test_two_phase_node_forces_its_pattern(services, config):
    created = run_node(
        "TwoPhaseCommitCoordinatorNode",
        config,
        operation="begin_transaction",
        requirements={"consistency": "eventual", "availability": "high"},
        participants=participants(services),
    )
    assert created["selected_pattern"] == "two_phase_commit"


def test_a_seed_participant_without_a_way_to_reach_it_is_refused(config):
    failed = run_node(
        "DistributedTransactionManagerNode",
        config,
        operation="create_transaction",
        participants=[{"id": "crm_service", "2pc": True, "saga": True}],
    )
    assert failed["failed"] is True and failed["error_type"] == "NodeValidationError"
    assert "neither how to reach it" in failed["error"]


def test_tenant_and_principal_are_configuration_never_inputs(config):
    with pytest.raises(WorkflowValidationError, match="tenant_id"):
        run_node(
            "DistributedTransactionManagerNode",
            config,
            operation="list_transactions",
            tenant_id="someone-else",
        )


def test_unknown_storage_and_operation_are_refused(config):
    with pytest.raises(NodeConfigurationError, match="state_storage"):
        DistributedTransactionManagerNode(state_storage="redis")
    failed = run_node("DistributedTransactionManagerNode", config, operation="commit_everything")
    assert failed["failed"] is True
    assert "unknown operation 'commit_everything'" in failed["error"]


def test_the_classes_are_the_registered_node_types():
    from kailash_nb.nodes.registry import NodeRegistry

    for node_class in (
        DistributedTransactionManagerNode,
        SagaCoordinatorNode,
        TwoPhaseCommitCoordinatorNode,
    ):
        assert NodeRegistry.get(node_class.__name__) is node_class
    assert os.environ.get("KAILASH_NB_TX_CRASH_POINT") is None


def test_dtm_09_an_unreachable_log_is_a_503_at_the_gateway(
    tmp_path, secured_gateway, serve_gateway
):
    """STOR-02 through the gateway: the node's log is a PostgreSQL server nobody
    listens on; the run fails, the caller gets 503 with Retry-After, nothing committed."""
    gateway = secured_gateway(f"sqlite:///{tmp_path / 'gateway.db'}")
    builder = WorkflowBuilder()
    builder.add_node(
        "DistributedTransactionManagerNode",
        "dtm",
        {"storage_config": {"connection_string": "postgresql://postgres@127.0.0.1:1/tx"}},
    )
    gateway.register_workflow("order", builder.build())
    server = serve_gateway(gateway)
    response = server.client.post(
        "/workflows/order/execute",
        json={"parameters": {"dtm": {"operation": "create_transaction"}}},
        headers=server.bearer_headers("ann"),
    )
    assert response.status_code == 503, response.text
    assert response.json()["code"] == "dependency_unavailable"
    assert response.headers["Retry-After"]


def test_idempotency_keys_need_the_node_s_tenant(config):
    """A key is scoped to the node's configured tenant and principal; a node without a
    tenant refuses keys rather than letting every caller share one key space."""
    refused = run_node(
        "DistributedTransactionManagerNode",
        config,
        operation="create_transaction",
        idempotency_key="order-7",
    )
    assert refused["failed"] is True and "tenant_id config" in refused["error"]
    scoped = {**config, "tenant_id": "acme", "principal": "shop"}
    first = run_node(
        "DistributedTransactionManagerNode",
        scoped,
        operation="create_transaction",
        idempotency_key="order-7",
    )
    again = run_node(
        "DistributedTransactionManagerNode",
        scoped,
        operation="create_transaction",
        idempotency_key="order-7",
    )
    other = run_node(
        "DistributedTransactionManagerNode",
        {**scoped, "tenant_id": "globex"},
        operation="create_transaction",
        idempotency_key="order-7",
    )
    assert first["transaction_id"] == again["transaction_id"] != other["transaction_id"]
