"""``run_problem``: what a caller is told about a run that did not complete, the same
way over every route and protocol (REST answers it as problem+json, MCP as an error
result)."""

from __future__ import annotations

from kailash_nb.middleware._problems import ProblemError
from kailash_nb.middleware._run_errors import ENDED, ErrorView
from kailash_nb.middleware.execution import RunEntry

__all__ = ["UNAVAILABLE_RETRY_SECONDS", "run_problem"]

#: ``Retry-After`` seconds when a run failed because a store or service was down.
UNAVAILABLE_RETRY_SECONDS = 5


def run_problem(entry: RunEntry, run_url: str, view: ErrorView) -> ProblemError:
    """The answer to a run that did not complete: 403 ``node_access_denied`` when the
    access policy refused one of its nodes, 503 ``dependency_unavailable`` when a node
    could not reach a store or service it needs, 504 ``run_timeout`` past its deadline,
    else 422 ``run_failed`` (a node failed, or the run could not be executed), naming
    the failed nodes and their error types (their messages only as ``view`` allows)."""
    extra = {"run_id": entry.run_id, "run_url": run_url}
    if entry.denied_node is not None:
        return ProblemError(
            403,
            "node_access_denied",
            f"the access policy denies executing node {entry.denied_node!r} of workflow "
            f"{entry.workflow!r}; the run failed there",
            extra=extra,
        )
    if entry.error is not None and entry.error.get("unavailable"):
        return ProblemError(
            503,
            "dependency_unavailable",
            "a store or service the workflow needs could not be reached; the run failed "
            "and may succeed when retried",
            headers={"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)},
            extra=extra,
        )
    error = view.error(entry.error) or {}
    if entry.status == "timeout":
        return ProblemError(504, "run_timeout", error.get("message", ENDED["timeout"]), extra=extra)
    extra["node_id"] = error.get("node_id")
    extra["failed_nodes"] = error.get("failed_nodes", [])
    detail = error.get("message", ENDED.get(entry.status, ENDED["failed"]))
    return ProblemError(422, "run_failed", detail, extra=extra)
