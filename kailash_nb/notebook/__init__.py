"""Build and run workflows cell by cell: the notebook API (also ``import kailash_nb as kn``).

::

    import kailash_nb as kn

    kn.workflow("etl")

    @kn.node
    def load(path="orders.csv"):          # `path` is a workflow parameter
        return read_rows(path)

    @kn.node
    def clean(load, threshold=0):         # `load` names a node: its result flows in
        return [row for row in load if row["amount"] > threshold]

    @kn.node("report", inputs={"rows": "clean"}, output="summary")
    def summarize(rows):
        return {"count": len(rows)}

    kn.run(threshold=10)                  # a table of nodes, states, timings, outputs
    kn.run(threshold=10)                  # nothing changed: every node is cached

How inputs are wired, for each function parameter (first match wins):

1. ``inputs={"rows": "clean.result"}`` (``"clean"`` alone means clean's primary output);
2. a connection made with ``kn.connect("clean.result -> report.rows")``;
3. a parameter named after another node: that node's primary output;
4. otherwise a workflow parameter, set with ``kn.run(name=value)``; its default is
   the signature's, and without a default it is required.

``output="summary"`` names the node's primary output: the function's return value
is published as the output ``summary`` (instead of ``result``), and references to
the node without an output (``inputs={"x": "report"}``, a parameter named
``report``) read it. For a node of a registered type (``add_node``), ``output``
only says which of the node's outputs is primary.

Caching: ``kn.run`` executes only the nodes whose definition (source, closure and
global values, config), upstream nodes or received parameters changed since their
last successful run; the others reuse their outputs and show as ``cached``.
``kn.run(no_cache=True)`` and ``kn.invalidate("node")`` force execution. Failed
nodes are never cached.
"""

from __future__ import annotations

import collections.abc
import pathlib
import typing

from kailash_nb.notebook import definitions as _definitions
from kailash_nb.notebook import display as _display
from kailash_nb.notebook import export as _export
from kailash_nb.notebook import lab_comm as _lab_comm
from kailash_nb.notebook import publish as _publish
from kailash_nb.notebook import session as _session
from kailash_nb.notebook.display import RunResult, WorkflowStatus
from kailash_nb.notebook.errors import ExportError, NotebookError
from kailash_nb.notebook.failures import NodeRunError
from kailash_nb.notebook.publish import Publication, publish
from kailash_nb.notebook.session import WorkflowSession

if typing.TYPE_CHECKING:
    from kailash_nb.access_control import UserContext
    from kailash_nb.runtime.access_controlled import AccessControlledRuntime

__all__ = [
    "ExportError",
    "NodeRunError",
    "NotebookError",
    "Publication",
    "RunResult",
    "WorkflowSession",
    "WorkflowStatus",
    "add_node",
    "connect",
    "current",
    "deterministic",
    "disconnect",
    "export",
    "invalidate",
    "node",
    "publish",
    "remove",
    "reset",
    "run",
    "run_as",
    "run_async",
    "show",
    "status",
    "workflow",
]

_Function = typing.TypeVar("_Function", bound=collections.abc.Callable[..., typing.Any])

# Inside a Jupyter kernel, the Kailash JupyterLab sidebar can now connect (comm target
# ``kailash_nb.lab``); elsewhere this does nothing.
_lab_comm.register()


def workflow(name: str) -> WorkflowSession:
    """Make the workflow ``name`` current (creating it on first use) and return it.

    Until this is called, nodes go to a workflow named ``default``.
    """
    return _session.select(name)


def current() -> WorkflowSession:
    """The current workflow."""
    return _session.current()


def node(
    target: collections.abc.Callable[..., typing.Any] | str | None = None,
    /,
    *,
    inputs: dict[str, str] | None = None,
    output: str | None = None,
) -> typing.Any:
    """Register a function as a node of the current workflow; returns it unchanged.

    ``@node``, ``@node()``, ``@node("id", inputs={"rows": "clean.result"},
    output="summary")`` and ``node(function)`` all work. The id defaults to the
    function's name; registering an id again replaces that node (its downstream
    turns stale if it changed). See the module docstring for how parameters are
    wired and what ``output`` means.

    Raises:
        NotebookError: an input names an unknown node or parameter.
        KailashException: the workflow would not build with this node (cycle,
            bad id, ``*args``); the previous definition stays.
    """
    if callable(target):
        current().add(
            _definitions.NodeDefinition.for_function(target, inputs=inputs, output=output)
        )
        return target

    def register(function: _Function) -> _Function:
        current().add(
            _definitions.NodeDefinition.for_function(
                function, node_id=target, inputs=inputs, output=output
            )
        )
        return function

    return register


def add_node(
    node_type: str,
    node_id: str,
    config: dict[str, typing.Any] | None = None,
    *,
    inputs: dict[str, str] | None = None,
    output: str | None = None,
) -> str:
    """Add (or replace) a node of a registered type, such as ``CSVReaderNode``.

    ``inputs`` maps the node's inputs to ``"node"`` or ``"node.output"``;
    ``output`` names which of its outputs references without an output mean.

    Raises:
        KailashException: unknown type (with close matches), bad config, unknown input.
    """
    return current().add(
        _definitions.NodeDefinition.for_type(
            node_type, node_id, config, inputs=inputs, output=output
        )
    )


def connect(spec: str) -> None:
    """Connect ``"source[.output] -> target.input"`` in the current workflow."""
    current().connect(spec)


def disconnect(spec: str) -> None:
    """Remove a connection made with ``connect``."""
    current().disconnect(spec)


def remove(node_id: str) -> None:
    """Remove a node from the current workflow."""
    current().remove(node_id)


def invalidate(node_id: str | None = None) -> None:
    """Make the next run execute ``node_id`` and its downstream (every node with ``None``)."""
    current().invalidate(node_id)


def run(
    node: str | None = None,
    /,
    *,
    no_cache: bool = False,
    parameters: dict[str, typing.Any] | None = None,
    **params: typing.Any,
) -> RunResult:
    """Run the current workflow (or only ``node`` and what it needs); see
    ``WorkflowSession.run``.

    Raises:
        NodeRunError: a node failed; the message names it and its defining cell.
    """
    return current().run(node, no_cache=no_cache, parameters=parameters, **params)


async def run_async(
    node: str | None = None,
    /,
    *,
    no_cache: bool = False,
    parameters: dict[str, typing.Any] | None = None,
    **params: typing.Any,
) -> RunResult:
    """``run`` for async code: ``result = await kn.run_async(threshold=3)``."""
    return await current().run_async(node, no_cache=no_cache, parameters=parameters, **params)


def run_as(
    user_context: UserContext | None, **options: typing.Any
) -> AccessControlledRuntime | None:
    """Run the current workflow for ``user_context`` under an access policy
    (``AccessControlledRuntime(**options)``), or without one again (``None``); see
    ``WorkflowSession.run_as``::

        kn.run_as(UserContext(user_id="bob", tenant_id="acme", roles=["analyst"]),
                  policies_file="policies.yaml", audit_enabled=True)
    """
    return current().run_as(user_context, **options)


def status() -> WorkflowStatus:
    """A table of the current workflow's nodes: state, timing, inputs, cell."""
    return current().status()


def show() -> typing.Any:
    """The graph widget of the current workflow (needs ``kailash-nb[notebook]``).

    Raises:
        NotebookError: the widget or its dependencies are not installed.
    """
    try:
        from kailash_nb.notebook.widget import GraphWidget
    except ImportError as exc:
        raise NotebookError(
            "kn.show() needs the graph widget and its dependencies: "
            f"pip install 'kailash-nb[notebook]' ({exc})"
        ) from None
    return GraphWidget(current())


def export(path: str | pathlib.Path) -> pathlib.Path:
    """Write the current workflow to ``path``: ``.yaml``/``.yml``/``.json`` (a
    portable definition) or ``.py`` (a script that rebuilds and runs it).

    Raises:
        ExportError: a node uses something a file cannot carry.
    """
    return _export.export_workflow(current(), path)


def deterministic(enabled: bool = True) -> None:
    """Show ``<run id>`` and ``<duration>`` instead of real values in displays, so
    saved notebook outputs are stable (also ``KAILASH_NB_DETERMINISTIC=1``)."""
    _display.set_deterministic(enabled)


def reset() -> None:
    """Forget every workflow, cache and publish mark (stopping the preview server), and
    return display settings to their defaults."""
    _session.reset()
    _publish.reset()
    _display.set_deterministic(None)
