"""``isolation="process"``: each case run and measured in a fresh Python process.

The workflow travels as its definition (``Workflow.to_dict``, secrets kept: the process
is this one's child), with the modules of its node classes, which the fresh process
imports so that node types registered by the test's own modules are known there. The
process is started with ``spawn`` (nothing inherited from this one's heap), runs the
case exactly as an in-process test does, and sends back the case's result plus its own
peak resident set size. A process that dies before it reports (killed for memory, a
crash in C code) fails the case with its exit code.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import multiprocessing
import multiprocessing.connection
import os
import pickle
import sys
import time
from collections.abc import Mapping
from typing import Any

from kailash_nb.sdk_exceptions import ExportException
from kailash_nb.testing.cases import Case
from kailash_nb.testing.errors import WorkflowTestSetupError
from kailash_nb.testing.performance import MEMORY_METHOD
from kailash_nb.testing.results import CaseResult, Failure, PerformanceReport, WorkflowOutputs
from kailash_nb.workflow.graph import Workflow
from kailash_nb.workflow.serialization import workflow_to_dict

__all__ = ["STARTUP_ALLOWANCE", "run_case_in_process"]

#: Seconds a fresh process may take to start and load the workflow, beyond
#: ``max_execution_time``, before it is killed.
STARTUP_ALLOWANCE = 60.0


def run_case_in_process(workflow: Workflow, case: Case, limits: Mapping[str, float]) -> CaseResult:
    """Run ``case`` of ``workflow`` in a fresh process; its result, with that process's
    figures.

    Raises:
        WorkflowTestSetupError: the workflow cannot travel as a definition (a node's
            config holds a function or an object).
    """
    try:
        definition = workflow_to_dict(workflow, redact_secrets=False)
    except ExportException as error:
        raise WorkflowTestSetupError(
            f"isolation='process' sends the workflow to a fresh process as its definition, "
            f"and it has none: {error}"
        ) from None
    modules = sorted({type(node).__module__ for node in workflow.nodes.values()})
    payload = {"definition": definition, "modules": modules, "case": case, "limits": dict(limits)}
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_main, args=(sender, payload), name="kailash-nb-workflow-test", daemon=True
    )
    started = time.perf_counter()
    process.start()
    sender.close()
    time_limit = limits.get("max_execution_time")
    timeout = None if time_limit is None else time_limit + STARTUP_ALLOWANCE
    try:
        reply = _reply(receiver, process, timeout)
    finally:
        receiver.close()
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
    if isinstance(reply, CaseResult):
        return reply
    problem = reply or _death(process.exitcode)
    return CaseResult(
        name=case.name,
        parameters=case.parameters,
        outputs=WorkflowOutputs(),
        failures=(Failure("run", f"isolation='process': {problem}"),),
        performance=PerformanceReport(
            execution_time=time.perf_counter() - started,
            memory_usage_mb=math.nan,
            isolation="process",
            memory_method=MEMORY_METHOD,
        ),
        status="failed",
    )


def _reply(receiver: Any, process: Any, timeout: float | None) -> CaseResult | str | None:
    """The child's result, its error text, or ``None`` when it died or ran out of time."""
    ready = multiprocessing.connection.wait([receiver, process.sentinel], timeout)
    if receiver not in ready:
        if process.sentinel in ready:
            return None
        process.kill()
        return (
            f"the test process did not report within {timeout:g} s (max_execution_time + "
            f"{STARTUP_ALLOWANCE:g} s to start) and was killed"
        )
    try:
        _kind, value = receiver.recv()
    except (EOFError, OSError):
        return None
    return value


def _death(exit_code: int | None) -> str:
    if exit_code is not None and exit_code < 0:
        return (
            f"the test process was killed by signal {-exit_code} before it reported (signal 9 "
            "is often the kernel's out-of-memory killer)"
        )
    return f"the test process exited with code {exit_code} before it reported"


def _child_main(sender: Any, payload: dict[str, Any]) -> None:
    """The fresh process: import the node modules, rebuild the workflow, run the case,
    send the result (or the error text) back, and exit at once (threads a timed-out
    node left running are not waited for)."""
    try:
        from kailash_nb.testing.runner import run_case

        for module in payload["modules"]:
            if module != "__main__":
                importlib.import_module(module)
        workflow = Workflow.from_dict(payload["definition"])
        result = run_case(workflow, payload["case"], payload["limits"], isolation="process")
        performance = dataclasses.replace(result.performance, process_peak_rss_mb=_peak_rss_mb())
        result = dataclasses.replace(
            result, performance=performance, outputs=_sendable(result.outputs)
        )
        sender.send(("result", result))
    except BaseException as error:  # everything goes back to the test, then we exit
        sender.send(("error", f"the test process failed: {type(error).__name__}: {error}"))
    finally:
        sender.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _sendable(outputs: WorkflowOutputs) -> WorkflowOutputs:
    """``outputs`` with each value that cannot be pickled replaced by its repr (the
    expected outputs were compared here, on the real values)."""
    sendable = WorkflowOutputs()
    for node_id, node_outputs in outputs.items():
        try:
            pickle.dumps(node_outputs)
            sendable[node_id] = node_outputs
        except Exception:
            if isinstance(node_outputs, Mapping):
                sendable[node_id] = {key: _picklable(value) for key, value in node_outputs.items()}
            else:
                sendable[node_id] = repr(node_outputs)
    return sendable


def _picklable(value: Any) -> Any:
    try:
        pickle.dumps(value)
    except Exception:
        return repr(value)
    return value


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak if sys.platform == "darwin" else peak * 1024) / (1024 * 1024)
