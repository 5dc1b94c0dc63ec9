"""The ``%kailash`` and ``%%kailash`` magics: notebook sugar over ``kailash_nb.notebook``.

Every subcommand calls one function of the plain API, so nothing here is only
reachable through a magic. Mistakes (unknown node or command, bad arguments) are
shown as one ``UsageError`` line, with close matches, instead of a traceback. A node
that fails in ``%kailash run`` is shown as IPython shows an error in a cell: the
message, then the node's own frames (``Cell In [3], line 2``) and failing line::

    %load_ext kailash_nb
    %kailash workflow etl

    %%kailash node clean --in rows=load --out cleaned
    def clean(rows, threshold=0):
        return [row for row in rows if row["amount"] > threshold]

    %%kailash node load --type CSVReaderNode --out data
    file_path: orders.csv

    %kailash run clean --param threshold=10
    %kailash status
    %kailash publish etl --route /nightly --preview
    %kailash publish etl --mcp --preview      # also as an MCP tool (/mcp, /mcp/ws)

The body of ``%%kailash node`` (without ``--type``) is ordinary Python that runs in
the notebook's namespace, so the function stays callable and linters see it; the
node's function is the one named by ``ID``, or the only one the cell defines.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from kailash_nb import notebook
from kailash_nb.notebook.definitions import running_cell_number
from kailash_nb.notebook.failures import NodeRunError
from kailash_nb.notebook.magic_args import (
    ConnectCommand,
    DisconnectCommand,
    ExportCommand,
    HelpRequested,
    InvalidateCommand,
    MagicArgumentError,
    NodeCommand,
    PublishCommand,
    RemoveCommand,
    RunCommand,
    ShowCommand,
    StatusCommand,
    WorkflowCommand,
    parse,
)
from kailash_nb.sdk_exceptions import KailashException
from kailash_nb.workflow.serialization import load_yaml

__all__ = ["KailashMagics", "load_magics", "unload_magics"]


@magics_class
class KailashMagics(Magics):
    """The ``kailash`` line and cell magic."""

    @line_cell_magic
    def kailash(self, line: str, cell: str | None = None) -> Any:
        """Build and run kailash_nb workflows; ``%kailash --help`` lists the commands."""
        try:
            command = parse(line, has_body=cell is not None)
            return self._dispatch(command, cell)
        except HelpRequested as request:
            print(request.text)
            return None
        except NodeRunError:
            raise  # shown like an error in a cell: message, then the user's frames
        except KailashException as exc:
            raise UsageError(str(exc)) from None

    def _dispatch(self, command: Any, cell: str | None) -> Any:
        if isinstance(command, WorkflowCommand):
            notebook.workflow(command.name)
        elif isinstance(command, NodeCommand):
            self._define_node(command, cell or "")
        elif isinstance(command, ConnectCommand):
            notebook.connect(command.spec)
        elif isinstance(command, DisconnectCommand):
            notebook.disconnect(command.spec)
        elif isinstance(command, ShowCommand):
            return notebook.show()
        elif isinstance(command, RunCommand):
            return notebook.run(command.node, no_cache=command.no_cache, parameters=command.params)
        elif isinstance(command, StatusCommand):
            return notebook.status()
        elif isinstance(command, RemoveCommand):
            notebook.remove(command.node)
        elif isinstance(command, InvalidateCommand):
            notebook.invalidate(command.node)
        elif isinstance(command, ExportCommand):
            path = notebook.export(command.path)
            print(f"Exported workflow {notebook.current().name!r} to {path}")
        elif isinstance(command, PublishCommand):
            return notebook.publish(
                command.name, route=command.route, preview=command.preview, mcp=command.mcp
            )
        return None

    def _define_node(self, command: NodeCommand, body: str) -> None:
        if command.node_type is not None:
            if command.node_id is None:
                raise MagicArgumentError(
                    f"%%kailash node --type {command.node_type}: give the node an ID, as in "
                    f"%%kailash node my_id --type {command.node_type}"
                )
            config = load_yaml(body) if body.strip() else {}
            notebook.add_node(
                command.node_type,
                command.node_id,
                config if config is not None else {},
                inputs=command.inputs,
                output=command.output,
            )
            return
        function = self._run_body(body, command.node_id)
        notebook.node(command.node_id, inputs=command.inputs, output=command.output)(function)

    def _run_body(self, body: str, wanted: str | None) -> Callable[..., Any]:
        """Run the cell body in the user's namespace; return the node's function."""
        shell = self.shell
        source = shell.transform_cell(body)
        functions = [
            statement.name
            for statement in ast.parse(source).body
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]
        if wanted in functions:
            chosen = wanted
        elif len(functions) == 1:
            chosen = functions[0]
        elif not functions:
            raise MagicArgumentError(
                "%%kailash node: the cell must define the node's function (def name(...): ...); "
                "for a node of a registered type, add --type TypeName and write its YAML config"
            )
        else:
            raise MagicArgumentError(
                f"%%kailash node: the cell defines {functions}; put the node's function name "
                f"after 'node', as in %%kailash node {functions[-1]}"
            )
        # Cache the source under a cell file name so inspect.getsource (fingerprints,
        # export) and tracebacks can read it, exactly as for an ordinary cell.
        number = running_cell_number()
        if number is None:  # called from code, not from a cell
            number = shell.execution_count
        filename = shell.compile.cache(source, number, raw_code=body)
        code = compile(source, filename, "exec", flags=shell.compile.flags, dont_inherit=True)
        exec(code, shell.user_global_ns, shell.user_ns)  # noqa: S102 - the user's own cell
        return shell.user_ns[chosen]


def load_magics(ipython: Any) -> None:
    """Register ``%kailash``/``%%kailash`` on ``ipython``."""
    ipython.register_magics(KailashMagics)


def unload_magics(ipython: Any) -> None:
    """Remove ``%kailash``/``%%kailash`` from ``ipython``."""
    magics = ipython.magics_manager.magics
    for kind in ("line", "cell"):
        magics[kind].pop("kailash", None)
    ipython.magics_manager.registry.pop("KailashMagics", None)
