"""The comm target ``kailash_nb.lab``: registered only inside a kernel, one connection per
comm, and the whole exchange with a real ipykernel (probe, snapshot, run)."""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import IPython
import pytest

import kailash_nb as kn
from kailash_nb.notebook import lab_comm

ROOT = Path(__file__).resolve().parents[2]
PROBE = "__import__('sys').modules.get('kailash_nb.notebook.lab_comm') is not None"


class FakeComm:
    """What ``lab_comm`` uses of a kernel's comm."""

    def __init__(self) -> None:
        self.comm_id = uuid.uuid4().hex
        self.sent: list[dict[str, Any]] = []
        self._closed = False
        self.on_message: Callable[[dict[str, Any]], None] | None = None
        self.on_closed: Callable[[dict[str, Any]], None] | None = None

    def send(self, data: dict[str, Any]) -> None:
        self.sent.append(data)

    def on_msg(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self.on_message = callback

    def on_close(self, callback: Callable[[dict[str, Any]], None]) -> None:
        self.on_closed = callback

    def receive(self, data: Any) -> None:
        assert self.on_message is not None
        self.on_message({"content": {"comm_id": self.comm_id, "data": data}})


class FakeManager:
    def __init__(self) -> None:
        self.targets: dict[str, Any] = {}

    def register_target(self, name: str, callback: Any) -> None:
        self.targets[name] = callback


@pytest.fixture
def kernel_state(monkeypatch) -> Iterator[None]:
    """A fresh notebook, and a fresh kernel-wide ``LabState`` closed at the end."""
    kn.reset()
    monkeypatch.setattr(lab_comm, "_state", [])
    yield
    for state in lab_comm._state:
        state.close()
    kn.reset()


def test_importing_kailash_nb_registers_nothing_outside_a_kernel() -> None:
    code = (
        "import json, sys\n"
        "import kailash_nb as kn\n"
        "kn.workflow('w')\n"
        "from kailash_nb.notebook import lab_comm\n"
        "print(json.dumps({'registered': lab_comm.register(),"
        " 'loaded': sorted(m for m in ('comm', 'ipykernel', 'IPython') if m in sys.modules)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert json.loads(output) == {"registered": False, "loaded": []}


def test_an_ipython_shell_without_a_kernel_registers_nothing(monkeypatch) -> None:
    manager = FakeManager()
    monkeypatch.setattr("comm.get_comm_manager", lambda: manager)
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    assert lab_comm.register() is False
    assert manager.targets == {}


def test_inside_a_kernel_the_target_is_registered_and_runs_are_kept_from_then_on(
    monkeypatch, kernel_state
) -> None:
    manager = FakeManager()
    shell = type("Shell", (), {"kernel": object()})()
    monkeypatch.setattr("comm.get_comm_manager", lambda: manager)
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    assert lab_comm.register() is True
    assert manager.targets == {"kailash_nb.lab": lab_comm._open}
    # A run before any sidebar connects ("Run All Cells" queues the probe behind the cells)
    kn.workflow("early")
    kn.node("one")(lambda: 1)
    result = kn.run()
    late = FakeComm()
    lab_comm._open(late, {"content": {"comm_id": late.comm_id, "data": {"request": "snapshot"}}})
    (snapshot,) = late.sent
    assert [run["run_id"] for run in snapshot["state"]["runs"]] == [result.run_id]
    assert snapshot["state"]["runs"][0]["nodes"][0]["state"] == "completed"


def test_a_comm_manager_that_refuses_is_logged_not_raised(
    monkeypatch, caplog, kernel_state
) -> None:
    def refuse() -> Any:
        raise RuntimeError("no comm manager here")

    shell = type("Shell", (), {"kernel": object()})()
    monkeypatch.setattr("comm.get_comm_manager", refuse)
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    with caplog.at_level(logging.WARNING, logger="kailash_nb.notebook.lab_comm"):
        assert lab_comm.register() is False
    (record,) = caplog.records
    assert "unavailable" in record.getMessage() and record.exc_info is not None


def test_each_comm_has_its_own_connection(kernel_state) -> None:
    first, second = FakeComm(), FakeComm()
    lab_comm._open(first, {"content": {"comm_id": first.comm_id, "data": {"request": "snapshot"}}})
    lab_comm._open(second, {"content": {"comm_id": second.comm_id, "data": {}}})
    assert [message["type"] for message in first.sent] == ["snapshot"]
    assert second.sent == []
    kn.workflow("w")
    kn.node("one")(lambda: 1)
    lab_comm._state[0].flush()
    second.receive({"request": "graph", "request_id": "g", "workflow": "w"})
    assert second.sent[-1]["request_id"] == "g" and 'data-node="one"' in second.sent[-1]["svg"]
    assert all(message["type"] != "reply" for message in first.sent)
    second.receive({"request": "bogus"})
    assert second.sent[-1]["ok"] is False and "unknown request 'bogus'" in second.sent[-1]["error"]
    # A reloaded page: the first comm closes, the second keeps receiving.
    assert first.on_closed is not None
    first.on_closed({"content": {"comm_id": first.comm_id, "data": {}}})
    count = len(first.sent)
    kn.run()
    assert len(first.sent) == count
    assert second.sent[-1]["type"] == "snapshot"
    assert [m["run"]["status"] for m in second.sent if m["type"] == "run"] == [
        "running",
        "completed",
    ]


def test_a_comm_closed_under_the_connection_is_dropped_and_logged(kernel_state, caplog) -> None:
    closing, staying = FakeComm(), FakeComm()
    for comm in (closing, staying):
        lab_comm._open(comm, {"content": {"comm_id": comm.comm_id, "data": None}})
    kn.workflow("w")
    kn.node("one")(lambda: 1)
    closing._closed = True  # closed from the kernel's side: ipykernel would not raise
    already = len(closing.sent)
    with caplog.at_level(logging.WARNING, logger="kailash_nb.notebook.lab_outbox"):
        result = kn.run()
    assert result.status == "completed"
    (record,) = [r for r in caplog.records if "could not send" in r.getMessage()]
    assert f"<comm {closing.comm_id}>" in record.getMessage()
    assert "is closed" in str(record.exc_info[1])
    assert len(lab_comm._state[0]._outbox._connections) == 1
    assert len(closing.sent) == already
    assert [m["run"]["status"] for m in staying.sent if m["type"] == "run"][-1] == "completed"


# -- a real kernel ---------------------------------------------------------------------------
class Kernel:
    """A python3 ipykernel running this checkout, and its client."""

    def __init__(self) -> None:
        from jupyter_client.manager import start_new_kernel

        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.manager, self.client = start_new_kernel(kernel_name="python3", env=env)

    def execute(self, code: str, **options: Any) -> dict[str, Any]:
        """Run ``code``; the ``execute_reply``'s content (failing the test on an error)."""
        msg_id = self.client.execute(code, **options)
        reply = self.client.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "ok", reply["content"]
        return reply["content"]

    def probe(self) -> tuple[str, int]:
        """The frontend's silent probe: its answer, and the reply's execution count."""
        content = self.execute("", silent=True, store_history=False, user_expressions={"kn": PROBE})
        answer = content["user_expressions"]["kn"]
        assert answer["status"] == "ok"
        return answer["data"]["text/plain"], content["execution_count"]

    def send(self, msg_type: str, content: dict[str, Any]) -> None:
        self.client.shell_channel.send(self.client.session.msg(msg_type, content))

    def comm_messages(
        self, comm_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 30
    ) -> list[dict[str, Any]]:
        """The data of the ``comm_msg`` messages of ``comm_id``, up to the first one
        meeting ``until``."""
        received: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.client.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            content = message["content"]
            if message["msg_type"] == "comm_msg" and content["comm_id"] == comm_id:
                received.append(content["data"])
                if until(content["data"]):
                    return received
        raise AssertionError(f"timed out; received {json.dumps(received)[:2000]}")

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


DEFINE = """
import kailash_nb as kn
kn.workflow("w")

@kn.node
def numbers(n=4):
    return list(range(n))

@kn.node
def total(numbers):
    return sum(numbers)
"""


def test_the_sidebar_protocol_with_a_real_kernel() -> None:  # ~1 s: not marked slow
    kernel = Kernel()
    try:
        counted = kernel.execute("1 + 1")["execution_count"]
        # Never imported kailash_nb: the probe says no, and counts nothing.
        assert kernel.probe() == ("False", counted)
        kernel.execute(DEFINE)
        assert kernel.probe() == ("True", counted + 1)
        assert kernel.execute("2 + 2")["execution_count"] == counted + 2
        # A run before the sidebar connects is in its first snapshot.
        kernel.execute("early = kn.run()")

        comm_id = uuid.uuid4().hex
        kernel.send(
            "comm_open",
            {"comm_id": comm_id, "target_name": "kailash_nb.lab", "data": {"request": "snapshot"}},
        )
        (snapshot,) = kernel.comm_messages(comm_id, lambda data: data["type"] == "snapshot")
        state = snapshot["state"]
        assert state["current"] == "w"
        assert [(n["id"], n["state"]) for n in state["workflows"][0]["nodes"]] == [
            ("numbers", "completed"),
            ("total", "completed"),
        ]
        (early,) = state["runs"]
        assert (early["workflow"], early["status"], len(early["nodes"])) == ("w", "completed", 2)

        kernel.send(
            "comm_msg",
            {
                "comm_id": comm_id,
                "data": {"request": "run", "request_id": "r1", "workflow": "w", "node": None},
            },
        )
        received = kernel.comm_messages(
            comm_id, lambda data: data["type"] == "run" and data["run"]["status"] != "running"
        )
        assert received[0] == {"v": 1, "type": "reply", "request_id": "r1", "ok": True}
        # Nothing changed since the early run: both nodes come from the cache.
        nodes = [(m["node"], m["state"]) for m in received if m["type"] == "node"]
        assert nodes == [
            ("numbers", "queued"),
            ("numbers", "cached"),
            ("total", "queued"),
            ("total", "cached"),
        ]
        entry = received[-1]["run"]
        assert (entry["workflow"], entry["status"]) == ("w", "completed")
        assert [(n["node"], n["state"]) for n in entry["nodes"]] == [
            ("numbers", "cached"),
            ("total", "cached"),
        ]
        final = kernel.comm_messages(comm_id, lambda data: data["type"] == "snapshot")[-1]
        assert final["state"]["runs"][0] == entry
        assert final["state"]["workflows"][0]["run_status"] == "completed"

        # A run from a cell (the engine on its own thread) reaches the comm too.
        kernel.execute("kn.run(no_cache=True)")
        from_cell = kernel.comm_messages(
            comm_id,
            lambda data: (
                data["type"] == "snapshot"
                and data["state"]["runs"][1] == entry
                and data["state"]["runs"][0]["status"] != "running"
            ),
        )
        assert [m["run"]["status"] for m in from_cell if m["type"] == "run"] == [
            "running",
            "completed",
        ]
        assert [m["state"] for m in from_cell if m["type"] == "node"][-1] == "completed"

        kernel.send("comm_close", {"comm_id": comm_id, "data": {}})
        connections = (
            "len(__import__('kailash_nb.notebook.lab_comm').notebook.lab_comm"
            "._state[0]._outbox._connections)"
        )
        content = kernel.execute("", silent=True, user_expressions={"n": connections})
        assert content["user_expressions"]["n"]["data"]["text/plain"] == "0"
    finally:
        kernel.stop()
