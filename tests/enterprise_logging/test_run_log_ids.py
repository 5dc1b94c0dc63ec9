"""The engine runs every workflow inside ``log_context(run_id=...)``: what a node logs
through an ``EnterpriseLogger`` carries the run id, whichever runtime runs it and
wherever the node executes (the caller's thread, a worker thread, the event loop)."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from typing import Any, ClassVar

import pytest

from kailash_nb import AsyncLocalRuntime, LocalRuntime, WorkflowBuilder
from kailash_nb.logging import EnterpriseLogger, context_fields, log_context
from kailash_nb.nodes.base import NodeParameter
from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.nodes.code import PythonCodeNode


class AsyncLogs(AsyncNode):
    """Logs ``message`` through its class's ``logger``, after yielding to the loop."""

    logger: ClassVar[EnterpriseLogger]

    def get_parameters(self) -> dict[str, NodeParameter]:
        return {"message": NodeParameter(name="message", type=str, required=False, default="")}

    async def async_run(self, message: str = "") -> dict[str, Any]:
        await asyncio.sleep(0)
        self.logger.info("async node %s", message)
        return {"result": message}


def records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def sync_logger_node(logger: EnterpriseLogger, name: str) -> PythonCodeNode:
    def logs(x: int = 0) -> int:
        logger.info("sync node %s", name)
        return x + 1

    return PythonCodeNode.from_function(logs, name=name)


def branches(logger: EnterpriseLogger, *, width: int, asynchronous: bool = False):
    """``width`` independent nodes that log (two or more run concurrently)."""
    builder = WorkflowBuilder()
    for index in range(width):
        node_id = f"n{index}"
        if asynchronous:
            # The builder instantiates a node's class again: the logger rides on it.
            node = type("AsyncLogsHere", (AsyncLogs,), {"logger": logger})()
        else:
            node = sync_logger_node(logger, node_id)
        builder.add_node(node, node_id)
    return builder.build()


def run(runtime: str, workflow, **options):
    if runtime == "local":
        return LocalRuntime(**options).execute(workflow)
    return asyncio.run(AsyncLocalRuntime(**options).execute_workflow_async(workflow, {}))


@pytest.mark.parametrize(
    ("runtime", "width", "options"),
    [
        ("local", 1, {}),  # inline, in the caller's thread, no event loop
        ("local", 3, {}),  # concurrent branches: sync nodes in worker threads
        ("local", 1, {"workflow_timeout": 30}),  # offloaded to a worker thread
        ("async", 1, {}),
        ("async", 3, {"workflow_timeout": 30}),
    ],
    ids=["local-inline", "local-threads", "local-timeout", "async-inline", "async-threads"],
)
def test_sync_nodes_records_carry_the_run_id(runtime, width, options):
    stream = io.StringIO()
    logger = EnterpriseLogger(stream=stream)
    _, run_id = run(runtime, branches(logger, width=width), **options)
    logged = records(stream)
    assert len(logged) == width
    assert {record["run_id"] for record in logged} == {run_id}


@pytest.mark.parametrize("runtime", ["local", "async"])
def test_async_nodes_records_carry_the_run_id(runtime):
    stream = io.StringIO()
    logger = EnterpriseLogger(stream=stream)
    _, run_id = run(runtime, branches(logger, width=2, asynchronous=True))
    logged = records(stream)
    assert [record["message"] for record in logged] == ["async node ", "async node "]
    assert {record["run_id"] for record in logged} == {run_id}


def test_a_code_nodes_records_carry_the_run_id():
    stream = io.StringIO()
    builder = WorkflowBuilder()
    builder.add_node(
        "PythonCodeNode",
        "code",
        {
            "code": (
                "from kailash_nb.logging import context_fields\n"
                "logger.warning('from code')\n"
                "result = context_fields()"
            )
        },
    )
    code = {"logger": EnterpriseLogger(stream=stream)}
    results, run_id = LocalRuntime().execute(builder.build(), {"code": code})
    assert results["code"]["result"] == {"run_id": run_id}
    (record,) = records(stream)
    assert record["message"] == "from code" and record["run_id"] == run_id


def test_the_callers_ids_reach_the_run_and_come_back_unchanged():
    stream = io.StringIO()
    logger = EnterpriseLogger(stream=stream)
    with log_context(request_id="req-1", tenant_id="acme", user_id="ada"):
        _, run_id = LocalRuntime(workflow_timeout=30).execute(branches(logger, width=1))
        assert context_fields() == {"request_id": "req-1", "tenant_id": "acme", "user_id": "ada"}
    (record,) = records(stream)
    assert {k: record[k] for k in ("run_id", "request_id", "tenant_id", "user_id")} == {
        "run_id": run_id,
        "request_id": "req-1",
        "tenant_id": "acme",
        "user_id": "ada",
    }


def test_a_record_outside_any_run_has_no_ids():
    stream = io.StringIO()
    logger = EnterpriseLogger(stream=stream)
    LocalRuntime().execute(branches(EnterpriseLogger(stream=io.StringIO()), width=1))
    logger.info("between runs")
    (record,) = records(stream)
    assert not {"run_id", "request_id", "tenant_id", "user_id"} & set(record)
    assert context_fields() == {}


def test_a_run_that_fails_leaves_no_ids_behind():
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "boom", {"code": "raise ValueError('no')"})
    builder.add_node("PythonCodeNode", "after", {"code": "result = x"})
    builder.add_connection("boom", "result", "after", "x")
    with pytest.raises(Exception, match="no"):
        LocalRuntime().execute(builder.build())
    assert context_fields() == {}


def test_importing_the_runtime_loads_only_the_log_context():
    code = (
        "import sys, kailash_nb.runtime\n"
        "print(sorted(m for m in sys.modules if m.startswith(('kailash_nb.logging', "
        "'kailash_nb.pii'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['kailash_nb.logging', 'kailash_nb.logging._context']"


def test_the_logging_package_serves_its_names_lazily():
    import kailash_nb.logging as package

    assert dir(package) == sorted(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        package.no_such_name  # noqa: B018


def test_an_email_shaped_user_id_is_redacted_with_pii_redaction():
    stream = io.StringIO()
    logger = EnterpriseLogger(stream=stream, pii_redaction=True)
    with log_context(user_id="jane@example.com", tenant_id="acme"):
        _, run_id = LocalRuntime().execute(branches(logger, width=1))
    (record,) = records(stream)
    assert record["user_id"] == "<redacted:email>"
    assert (record["tenant_id"], record["run_id"]) == ("acme", run_id)


def test_a_nested_run_from_the_loop_thread_keeps_the_callers_ids():
    # An async node first puts the outer run on the shared loop thread, where the sync
    # node then runs inline; its nested run (with a timeout, so on a loop) cannot use
    # that busy loop and gets a loop on a fresh thread.
    seen: list[dict] = []

    def inner_node(x: int = 0) -> int:
        seen.append(context_fields())
        return x

    inner = WorkflowBuilder()
    inner.add_node(PythonCodeNode.from_function(inner_node, name="inner"), "inner")
    inner_workflow = inner.build()

    def nests(result: str = "") -> str:
        _, nested_run_id = LocalRuntime(workflow_timeout=30).execute(inner_workflow)
        return nested_run_id

    logger = EnterpriseLogger(stream=io.StringIO())
    outer = WorkflowBuilder()
    outer.add_node(type("AsyncLogsHere", (AsyncLogs,), {"logger": logger})(), "first")
    outer.add_node(PythonCodeNode.from_function(nests, name="nests"), "nests")
    outer.add_connection("first", "result", "nests", "result")
    with log_context(request_id="req-nested"):
        results, outer_run_id = LocalRuntime().execute(outer.build())
    nested_run_id = results["nests"]["result"]
    assert seen == [{"request_id": "req-nested", "run_id": nested_run_id}]
    assert nested_run_id != outer_run_id
