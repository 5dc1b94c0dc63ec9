"""Runtimes: front ends over the one engine in ``kailash_nb.runtime.engine``."""

from kailash_nb.runtime.async_local import AsyncLocalRuntime
from kailash_nb.runtime.events import EventBus, NodeEvent, RunEvent
from kailash_nb.runtime.local import LocalRuntime

__all__ = ["AsyncLocalRuntime", "EventBus", "LocalRuntime", "NodeEvent", "RunEvent"]
