"""Parsing the arguments of ``%kailash`` / ``%%kailash`` into command objects.

Pure functions of the magic's line (no IPython needed), so they are tested alone::

    parse("run report --param threshold=3 --no-cache")
    # RunCommand(node='report', params={'threshold': 3}, no_cache=True)

Values of ``--param name=value`` are Python literals when they parse as one
(``3``, ``0.5``, ``True``, ``[1, 2]``, ``'text'``) and strings otherwise;
``--param node.name=value`` sets an input of one node only.
"""

from __future__ import annotations

import argparse
import ast
import shlex
from dataclasses import dataclass, field
from typing import Any, NoReturn

from kailash_nb.notebook.errors import NotebookError
from kailash_nb.sdk_exceptions import close_matches

__all__ = [
    "COMMANDS",
    "ConnectCommand",
    "DisconnectCommand",
    "ExportCommand",
    "HelpRequested",
    "InvalidateCommand",
    "MagicArgumentError",
    "NodeCommand",
    "PublishCommand",
    "RemoveCommand",
    "RunCommand",
    "ShowCommand",
    "StatusCommand",
    "WorkflowCommand",
    "parse",
]


class MagicArgumentError(NotebookError):
    """The magic's arguments do not parse; the message says what is expected."""


class HelpRequested(Exception):
    """``-h``/``--help`` was given; ``text`` is the help to print."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True)
class WorkflowCommand:
    """``%kailash workflow NAME``: select or create a workflow."""

    name: str


@dataclass(frozen=True)
class NodeCommand:
    """``%%kailash node [ID] [--type T] [--in name=node[.output] ...] [--out NAME]``."""

    node_id: str | None = None
    node_type: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    output: str | None = None


@dataclass(frozen=True)
class ConnectCommand:
    """``%kailash connect SRC[.out] -> DST.in``."""

    spec: str


@dataclass(frozen=True)
class DisconnectCommand:
    """``%kailash disconnect SRC[.out] -> DST.in``."""

    spec: str


@dataclass(frozen=True)
class ShowCommand:
    """``%kailash show``: display the graph widget."""


@dataclass(frozen=True)
class RunCommand:
    """``%kailash run [NODE] [--param k=v ...] [--no-cache]``."""

    node: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    no_cache: bool = False


@dataclass(frozen=True)
class StatusCommand:
    """``%kailash status``: the node table."""


@dataclass(frozen=True)
class RemoveCommand:
    """``%kailash rm NODE``."""

    node: str


@dataclass(frozen=True)
class InvalidateCommand:
    """``%kailash invalidate [NODE]``: forget cached outputs."""

    node: str | None = None


@dataclass(frozen=True)
class ExportCommand:
    """``%kailash export FILE``."""

    path: str


@dataclass(frozen=True)
class PublishCommand:
    """``%kailash publish [NAME] [--route /path] [--preview] [--mcp]``."""

    name: str | None = None
    route: str | None = None
    preview: bool = False
    mcp: bool = False


Command = (
    WorkflowCommand
    | NodeCommand
    | ConnectCommand
    | DisconnectCommand
    | ShowCommand
    | RunCommand
    | StatusCommand
    | RemoveCommand
    | InvalidateCommand
    | ExportCommand
    | PublishCommand
)

#: Subcommand -> one-line description (the order of the usage message).
COMMANDS = {
    "workflow": "select or create the current workflow: workflow NAME",
    "node": "define a node from the cell: %%kailash node [ID] [--type T] [--in x=node] [--out N]",
    "connect": "connect an output to an input: connect SRC[.out] -> DST.in",
    "disconnect": "remove a connection made with connect: disconnect SRC[.out] -> DST.in",
    "show": "display the workflow graph",
    "run": "run the workflow: run [NODE] [--param k=v ...] [--no-cache]",
    "status": "show every node's state",
    "rm": "remove a node: rm NODE",
    "invalidate": "forget cached outputs: invalidate [NODE]",
    "export": "write the workflow to a file: export FILE (.yaml, .json or .py)",
    "publish": (
        "serve a workflow with kailash-nb serve: publish [NAME] [--route /path] [--preview] [--mcp]"
    ),
}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting the kernel."""

    def error(self, message: str) -> NoReturn:
        raise MagicArgumentError(f"%kailash {self.prog.split()[-1]}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise HelpRequested(self.format_help())

    def print_help(self, file: Any = None) -> None:
        """Help is raised as ``HelpRequested`` by ``exit``, not printed here."""


def parse(line: str, *, has_body: bool = False) -> Command:
    """Parse the text after ``%kailash`` (``has_body`` for the ``%%kailash`` form).

    Raises:
        MagicArgumentError: unknown subcommand (with close matches), bad arguments,
            a cell body given to a line-only subcommand, or ``node`` without one.
        HelpRequested: ``-h``/``--help``.
    """
    try:
        words = shlex.split(line, posix=True)
    except ValueError as exc:
        raise MagicArgumentError(f"%kailash: cannot split the arguments: {exc}") from None
    if not words or words[0] in ("-h", "--help", "help"):
        raise HelpRequested(_usage())
    name, rest = words[0], words[1:]
    if name not in COMMANDS:
        raise MagicArgumentError(
            f"%kailash: unknown command {name!r}{close_matches(name, COMMANDS)}; commands: "
            f"{', '.join(COMMANDS)}"
        )
    if has_body != (name == "node"):
        if has_body:
            raise MagicArgumentError(
                f"%%kailash {name} takes no cell body; use the line magic %kailash {name}"
            )
        raise MagicArgumentError(
            "%kailash node needs a cell body: write %%kailash node ... on the first line of "
            "a cell, with the function (or the YAML config with --type) below it"
        )
    if name in ("connect", "disconnect"):
        spec = " ".join(rest)
        if not spec or rest in (["-h"], ["--help"]):
            raise HelpRequested(f"usage: %kailash {COMMANDS[name].split(': ', 1)[1]}")
        return ConnectCommand(spec) if name == "connect" else DisconnectCommand(spec)
    arguments = _PARSERS[name]().parse_args(rest)
    return _BUILDERS[name](arguments)


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """``"name=value"`` as ``(name, value)``.

    Raises:
        MagicArgumentError: no ``=`` or an empty name.
    """
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise MagicArgumentError(f"{option} expects name=value, got {text!r}")
    return name.strip(), value


def parse_value(text: str) -> Any:
    """A Python literal if ``text`` is one, else ``text`` itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _usage() -> str:
    lines = ["usage: %kailash COMMAND ...", "", "commands:"]
    lines.extend(f"  {name:<11} {text}" for name, text in COMMANDS.items())
    return "\n".join(lines)


def _parser(name: str) -> _Parser:
    return _Parser(prog=f"%kailash {name}", description=COMMANDS[name])


def _workflow_parser() -> _Parser:
    parser = _parser("workflow")
    parser.add_argument("name")
    return parser


def _node_parser() -> _Parser:
    parser = _parser("node")
    parser.add_argument("node_id", nargs="?", metavar="ID")
    parser.add_argument("--type", dest="node_type", metavar="TYPE")
    parser.add_argument(
        "--in", dest="inputs", action="append", default=[], metavar="NAME=NODE[.OUTPUT]"
    )
    parser.add_argument("--out", dest="output", metavar="NAME")
    return parser


def _run_parser() -> _Parser:
    parser = _parser("run")
    parser.add_argument("node", nargs="?", metavar="NODE")
    parser.add_argument("--param", dest="params", action="append", default=[], metavar="K=V")
    parser.add_argument("--no-cache", action="store_true")
    return parser


def _node_argument_parser(name: str, optional: bool = False) -> Any:
    def build() -> _Parser:
        parser = _parser(name)
        parser.add_argument("node", nargs="?" if optional else None, metavar="NODE")
        return parser

    return build


def _bare_parser(name: str) -> Any:
    return lambda: _parser(name)


def _export_parser() -> _Parser:
    parser = _parser("export")
    parser.add_argument("path", metavar="FILE")
    return parser


def _publish_parser() -> _Parser:
    parser = _parser("publish")
    parser.add_argument("name", nargs="?", metavar="NAME")
    parser.add_argument("--route", metavar="/PATH")
    parser.add_argument("--preview", action="store_true")
    parser.add_argument("--mcp", action="store_true")
    return parser


def _node_command(arguments: argparse.Namespace) -> NodeCommand:
    inputs = dict(parse_assignment(text, "--in") for text in arguments.inputs)
    return NodeCommand(arguments.node_id, arguments.node_type, inputs, arguments.output)


def _run_command(arguments: argparse.Namespace) -> RunCommand:
    params: dict[str, Any] = {}
    for text in arguments.params:
        name, value = parse_assignment(text, "--param")
        node_id, dot, input_name = name.partition(".")
        if dot:
            if not node_id or not input_name:
                raise MagicArgumentError(
                    f"--param expects name=value or node.name=value, got {text!r}"
                )
            params.setdefault(node_id, {})[input_name] = parse_value(value)
        else:
            params[name] = parse_value(value)
    return RunCommand(arguments.node, params, arguments.no_cache)


_PARSERS = {
    "workflow": _workflow_parser,
    "node": _node_parser,
    "show": _bare_parser("show"),
    "run": _run_parser,
    "status": _bare_parser("status"),
    "rm": _node_argument_parser("rm"),
    "invalidate": _node_argument_parser("invalidate", optional=True),
    "export": _export_parser,
    "publish": _publish_parser,
}
_BUILDERS = {
    "workflow": lambda arguments: WorkflowCommand(arguments.name),
    "node": _node_command,
    "show": lambda arguments: ShowCommand(),
    "run": _run_command,
    "status": lambda arguments: StatusCommand(),
    "rm": lambda arguments: RemoveCommand(arguments.node),
    "invalidate": lambda arguments: InvalidateCommand(arguments.node),
    "export": lambda arguments: ExportCommand(arguments.path),
    "publish": lambda arguments: PublishCommand(
        arguments.name, arguments.route, arguments.preview, arguments.mcp
    ),
}
