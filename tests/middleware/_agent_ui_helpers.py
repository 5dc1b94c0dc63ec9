"""Helpers of the agent-UI middleware tests: small workflows, waiting for an end."""

from __future__ import annotations

import asyncio
from typing import Any

from kailash_nb.middleware.agent_events import AgentEvent
from kailash_nb.workflow.builder import WorkflowBuilder
from kailash_nb.workflow.graph import Workflow

FINAL = {"completed", "failed", "timeout", "cancelled"}


def doubling() -> WorkflowBuilder:
    """``double`` returns ``{"value": x * 2}``."""
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "double", {"code": "result = {'value': x * 2}"})
    return builder


def two_steps() -> Workflow:
    """``first`` then ``second`` (progress is reported per node)."""
    builder = WorkflowBuilder()
    builder.add_node("PythonCodeNode", "first", {"code": "result = 1"})
    builder.add_node("PythonCodeNode", "second", {"code": "result = value + 1"})
    builder.add_connection("first", "result", "second", "value")
    return builder.build()


def sleeping(seconds: float) -> Workflow:
    """One node that sleeps ``seconds``, then a second one."""
    builder = WorkflowBuilder()
    builder.add_node(
        "PythonCodeNode", "nap", {"code": f"import time\ntime.sleep({seconds})\nresult = 1"}
    )
    builder.add_node("PythonCodeNode", "after", {"code": "result = value"})
    builder.add_connection("nap", "result", "after", "value")
    return builder.build()


async def wait_for_status(agent_ui: Any, execution_id: str, session: Any, **owner: Any) -> dict:
    """The execution's status once it has ended (at most 10 s)."""
    for _ in range(1000):
        status = await agent_ui.get_execution_status(execution_id, session, **owner)
        if status is not None and status["status"] in FINAL:
            await agent_ui.settled()
            return status
        await asyncio.sleep(0.01)
    raise AssertionError(f"execution {execution_id} did not end: {status}")


class Recorder:
    """A subscriber callback keeping the events it receives."""

    def __init__(self) -> None:
        self.events: list[AgentEvent] = []

    async def __call__(self, event: AgentEvent) -> None:
        self.events.append(event)

    @property
    def types(self) -> list[str]:
        """The received event types, in order."""
        return [event.type.value for event in self.events]
