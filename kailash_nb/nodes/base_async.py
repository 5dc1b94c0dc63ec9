"""``AsyncNode``: a node whose work is a coroutine."""

from __future__ import annotations

from typing import Any, ClassVar

from kailash_nb._loop_thread import run_blocking
from kailash_nb.nodes.node import Node
from kailash_nb.sdk_exceptions import KailashException

__all__ = ["AsyncNode"]


class AsyncNode(Node):
    """Base class for nodes that do I/O: implement ``async_run(**kwargs) -> dict``.

    The engine awaits ``async_run`` on its event loop, so many async nodes wait
    concurrently. ``execute()`` still works from plain code (and inside a running
    loop such as a Jupyter kernel); ``await node.execute_async(...)`` is the async twin.
    """

    is_async: ClassVar[bool] = True

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        """Do the node's work and return its outputs as a dict."""
        raise NotImplementedError(f"{type(self).__name__} must implement async_run(**kwargs)")

    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Run ``async_run`` to completion from synchronous code."""
        return run_blocking(self.async_run(**kwargs))

    def execute(self, **inputs: Any) -> dict[str, Any]:
        """Run this node on its own from synchronous code; see ``Node.execute``."""
        return run_blocking(self.execute_async(**inputs))

    async def execute_async(self, **inputs: Any) -> dict[str, Any]:
        """Run this node on its own: configuration overlaid with ``inputs``."""
        self.check_input_names(inputs)
        return await self.run_with_async(self.merge_inputs(inputs))

    async def run_with_async(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Await ``async_run`` with already merged inputs and check that it returned a dict."""
        try:
            outputs = await self.async_run(**kwargs)
        except KailashException:
            raise
        except Exception as exc:
            raise self.execution_error(exc) from exc
        return self.check_outputs(outputs)
