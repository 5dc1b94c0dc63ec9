"""``isolation="process"``: each case run and measured in a fresh Python process.

The workflow travels as its definition (``Workflow.to_dict``, secrets kept: the process
is this one's child), with the modules of its node classes, which the fresh process
imports so that node types registered by the test's own modules are known there. The
process is a new interpreter (``sys.executable``, this one's ``sys.path``; nothing
inherited from this one's heap). It runs the case exactly as an in-process test does
and sends back the case's result plus its own peak resident set size through a pipe
of its own (its stdout and stderr stay the test's). A process that dies before it
reports (killed for memory, a crash in C code) fails the case with its exit code.

It is started with ``subprocess``, not ``multiprocessing``: spawning there reads this
process's ``__main__`` module, which an IPython kernel's ``%reset`` leaves without the
``__spec__`` spawning needs.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import pickle
import subprocess
import sys
import threading
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

__all__ = ["STARTUP_ALLOWANCE", "child_main", "run_case_in_process"]

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
    payload = {
        "definition": definition,
        "modules": modules,
        "case": case,
        "limits": dict(limits),
        "sys_path": list(sys.path),
    }
    time_limit = limits.get("max_execution_time")
    timeout = None if time_limit is None else time_limit + STARTUP_ALLOWANCE
    started = time.perf_counter()
    reply, exit_code = _run_child(payload, timeout)
    if isinstance(reply, CaseResult):
        return reply
    problem = reply or _death(exit_code)
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


def _run_child(payload: dict[str, Any], timeout: float | None) -> tuple[Any, int | None]:
    """Start the fresh process, send it ``payload`` and wait for its reply: the
    ``CaseResult``, its error text, or ``None`` (died), with its exit code."""
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, a fixed command
            [sys.executable, "-c", _CHILD_COMMAND, str(write_end)],
            stdin=subprocess.PIPE,
            pass_fds=(write_end,),
        )
    finally:
        os.close(write_end)
    received: list[bytes] = []
    with os.fdopen(read_end, "rb") as reply_pipe:
        reader = threading.Thread(target=lambda: received.append(reply_pipe.read()), daemon=True)
        reader.start()
        assert process.stdin is not None
        try:
            process.stdin.write(pickle.dumps(payload))
            process.stdin.close()
        except BrokenPipeError:
            pass  # it died at once; its exit code says so
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            return (
                f"the test process did not report within {timeout:g} s (max_execution_time + "
                f"{STARTUP_ALLOWANCE:g} s to start) and was killed"
            ), process.returncode
        reader.join()
    data = received[0] if received else b""
    if not data:
        return None, process.returncode
    _kind, value = pickle.loads(data)  # noqa: S301 - our own child's reply
    return value, process.returncode


def _death(exit_code: int | None) -> str:
    if exit_code is not None and exit_code < 0:
        return (
            f"the test process was killed by signal {-exit_code} before it reported (signal 9 "
            "is often the kernel's out-of-memory killer)"
        )
    return f"the test process exited with code {exit_code} before it reported"


_CHILD_COMMAND = (
    "import sys; from kailash_nb.testing.isolation import child_main; child_main(int(sys.argv[1]))"
)


def child_main(reply_fd: int) -> None:
    """The fresh process's entry point: read the payload from stdin, run the case, write
    the reply to ``reply_fd``."""
    payload = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - sent by our parent
    sys.path[:] = payload["sys_path"]
    _child_main(os.fdopen(reply_fd, "wb"), payload)


def _child_main(reply: Any, payload: dict[str, Any]) -> None:
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
        reply.write(pickle.dumps(("result", result)))
    except BaseException as error:  # everything goes back to the test, then we exit
        reply.write(
            pickle.dumps(("error", f"the test process failed: {type(error).__name__}: {error}"))
        )
    finally:
        reply.close()
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
