"""A gateway for the contract test, served in its own process.

``KAILASH_NB_JWT_SECRET=... python tests/_contract_app.py DATABASE_URL`` serves, on a free
127.0.0.1 port, a gateway with token auth (signed with that secret), an admin user and
these workflows:

- ``code``: an untyped ``PythonCodeNode`` snippet (``result = [a, b]``, ``b`` preset);
- ``typed``: ``PythonCodeNode.from_function`` nodes taking a pydantic model and ints;
- ``fails``: one node, which raises;
- ``fails_early``: a node that raises, with a node depending on it.

With a third argument, a policies file, the gateway runs under an
``AccessControlledRuntime`` with that policy and its audit trail on.

Once listening it prints one JSON line ``{"port": ..., "token": ...}`` (an admin
access token) and serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from pydantic import BaseModel

from kailash_nb import WorkflowBuilder
from kailash_nb.middleware.gateway import create_gateway
from kailash_nb.nodes.code import PythonCodeNode
from kailash_nb.runtime.access_controlled import AccessControlledRuntime
from kailash_nb.security import SecurityConfig


class Point(BaseModel):
    """A model taken as a parameter."""

    x: int
    y: float = 0.0


def shift(point: Point, by: int = 1) -> dict[str, int]:
    """Move ``point`` right by ``by``."""
    return {"x": point.x + by}


def double(n: int) -> int:
    """Twice ``n``."""
    return n * 2


def explode(n: int = 0) -> int:
    """Always raises."""
    raise RuntimeError(f"exploded on {n}")


def build_gateway(database_url: str, jwt_secret: str, policies_file: str | None = None):
    """The served gateway (not started), under ``policies_file`` if given."""
    config = SecurityConfig(jwt_secret=jwt_secret, max_requests_per_minute=1_000_000)
    runtime = None
    if policies_file is not None:
        runtime = AccessControlledRuntime(
            policies_file=policies_file,
            audit_enabled=True,
            audit_write="batched",
            database_url=database_url,
        )
    gateway = create_gateway(
        title="contract", security_config=config, database_url=database_url, runtime=runtime
    )

    code = WorkflowBuilder()
    code.add_node("PythonCodeNode", "compute", {"code": "result = [a, b]", "b": 3})
    gateway.register_workflow("code", code.build(), description="untyped code")

    typed = WorkflowBuilder()
    typed.add_node(PythonCodeNode.from_function(shift), "shift")
    typed.add_node(PythonCodeNode.from_function(double), "double")
    gateway.register_workflow("typed", typed.build(), description="typed functions")

    fails = WorkflowBuilder()
    fails.add_node(PythonCodeNode.from_function(explode), "explode")
    gateway.register_workflow("fails", fails.build(), description="always fails")

    early = WorkflowBuilder()
    early.add_node(PythonCodeNode.from_function(explode), "explode")
    early.add_node(PythonCodeNode.from_function(double), "after")
    early.add_connection("explode", "result", "after", "n")
    gateway.register_workflow("fails_early", early.build(), description="fails first")
    return gateway


async def serve(database_url: str, policies_file: str | None) -> None:
    """Serve until SIGTERM/SIGINT; announce the port and an admin token first."""
    gateway = build_gateway(database_url, os.environ["KAILASH_NB_JWT_SECRET"], policies_file)
    port = await gateway.start("127.0.0.1", 0)
    pair = gateway.auth.issue_tokens("root", tenant_id="acme", roles=["admin"])
    sys.stdout.write(json.dumps({"port": port, "token": pair.access_token}) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await gateway.stop(timeout=5)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
