"""Steps inside a running node, for whoever watches the run.

A node that works in several steps (an agent sending a prompt, calling a tool,
answering) reports each one; the runtime turns reports into events on its event bus,
so the notebook widget and the gateway's event streams show the node's progress live::

    class Agent(Node):
        def run(self, question):
            report_step("prompt_sent", round=1, messages=2)
            ...
            report_step("answer", content=answer)

Outside a run, or when nobody subscribed to steps, ``report_step`` does nothing and
costs one context-variable read. The runtime installs the receiver with
:func:`step_receiver` around each node it runs; the variable follows the node into
worker threads and tasks it starts.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

__all__ = ["AGENT_STEPS", "StepReceiver", "current_step_receiver", "report_step", "step_receiver"]

#: The steps an agent node reports, in the order they happen in one round.
AGENT_STEPS = ("prompt_sent", "tool_call", "tool_result", "answer")

#: Called with the step's name and its details (a dict of JSON-safe values).
StepReceiver = Callable[[str, dict[str, Any]], None]

_RECEIVER: contextvars.ContextVar[StepReceiver | None] = contextvars.ContextVar(
    "kailash_nb_step_receiver", default=None
)


def report_step(step: str, **detail: Any) -> None:
    """Report that the running node reached ``step``, with ``detail`` (JSON-safe
    values: strings, numbers, booleans, lists and dicts of them).

    Does nothing outside a run or when nothing watches steps. Receivers must not
    raise (the runtime's logs a subscriber's error instead): watching never changes
    the outcome of the work.
    """
    receiver = _RECEIVER.get()
    if receiver is not None:
        receiver(step, detail)


def current_step_receiver() -> StepReceiver | None:
    """The receiver :func:`report_step` calls here and now (``None``: none); a runtime
    that runs the node elsewhere passes on the steps reported there to it."""
    return _RECEIVER.get()


class step_receiver:
    """Within the block, :func:`report_step` calls ``receiver`` (``None``: nothing).

    A small class rather than a generator: the runtime enters one per node it runs.
    """

    __slots__ = ("_receiver", "_token")

    def __init__(self, receiver: StepReceiver | None) -> None:
        self._receiver = receiver
        self._token: contextvars.Token[StepReceiver | None] | None = None

    def __enter__(self) -> None:
        self._token = _RECEIVER.set(self._receiver)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _RECEIVER.reset(self._token)
            self._token = None
