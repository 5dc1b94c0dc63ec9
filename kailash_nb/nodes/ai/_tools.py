"""Tools an agent may call: Python functions, nodes, or bare OpenAI tool definitions,
each described to the model by a JSON schema and run with the arguments it sends.

- a function: the schema comes from its signature (type hints, pydantic models
  included, and defaults) and its docstring (first paragraph; ``Args:`` lines
  describe parameters); arguments are validated by pydantic before the call;
- a node: the schema comes from ``get_parameters()``; it runs with ``execute``
  (``execute_async`` when it is async), and its outputs are the result;
- a dict in OpenAI's format (``{"type": "function", "function": {...}}``): offered to
  the model but not run here; a call to it ends the agent's loop and is returned.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from kailash_nb._loop_thread import run_blocking
from kailash_nb.nodes.node import Node

__all__ = ["Tool", "ToolArgumentsError", "result_text", "tools_from"]

_NAME = re.compile(r"[^A-Za-z0-9_-]")
_ARG_LINE = re.compile(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")
_JSON_TYPES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}


class ToolArgumentsError(ValueError):
    """The model's arguments do not fit the tool (the message says which and why)."""


@dataclass(frozen=True)
class Tool:
    """One tool offered to the model.

    Attributes:
        name: the name the model calls it by.
        description: what it does, for the model.
        parameters: the JSON schema of its arguments.
        target: the function or node that runs it (``None``: not run here).
    """

    name: str
    description: str
    parameters: dict[str, Any]
    target: Callable[..., Any] | Node | None = None
    arguments_model: type[BaseModel] | None = None

    def definition(self) -> dict[str, Any]:
        """The tool as OpenAI's function-tool definition."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def _arguments(self, arguments: dict[str, Any]) -> dict[str, Any]:
        if self.arguments_model is None:
            return arguments
        try:
            checked = self.arguments_model.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(arguments)'}: {e['msg']}" for e in exc.errors()
            )
            raise ToolArgumentsError(
                f"arguments do not fit tool {self.name!r}: {problems}"
            ) from None
        return {name: getattr(checked, name) for name in type(checked).model_fields}

    def run(self, arguments: dict[str, Any]) -> Any:
        """Run the tool from synchronous code and return its result."""
        target = self.target
        if isinstance(target, Node):
            return target.execute(**arguments)
        assert target is not None
        value = target(**self._arguments(arguments))
        return run_blocking(value) if inspect.iscoroutine(value) else value

    async def run_async(self, arguments: dict[str, Any]) -> Any:
        """Run the tool without blocking the event loop (sync work goes to a thread)."""
        target = self.target
        if isinstance(target, Node):
            if target.is_async:
                return await target.execute_async(**arguments)  # type: ignore[attr-defined]
            return await anyio.to_thread.run_sync(lambda: target.execute(**arguments))
        assert target is not None
        checked = self._arguments(arguments)
        if inspect.iscoroutinefunction(target):
            return await target(**checked)
        value = await anyio.to_thread.run_sync(lambda: target(**checked))
        return await value if inspect.iscoroutine(value) else value


def tools_from(items: list[Any]) -> list[Tool]:
    """The tools described by ``items`` (functions, nodes, OpenAI tool dicts, or
    ``Tool``), in order.

    Raises:
        ValueError: an item is none of those, a dict is not a function tool, or two
            tools share a name (the message names the item).
    """
    tools: list[Tool] = []
    for position, item in enumerate(items):
        if isinstance(item, Tool):
            tool = item
        elif isinstance(item, Node):
            tool = _node_tool(item)
        elif isinstance(item, dict):
            tool = _dict_tool(item, position)
        elif callable(item):
            tool = _function_tool(item)
        else:
            raise ValueError(
                f"tools[{position}] is a {type(item).__name__}; give a function, a node, or "
                "an OpenAI tool dict {'type': 'function', 'function': {'name': ...}}"
            )
        if any(existing.name == tool.name for existing in tools):
            raise ValueError(f"tools[{position}]: two tools are named {tool.name!r}")
        tools.append(tool)
    return tools


def _dict_tool(item: dict[str, Any], position: int) -> Tool:
    function = item.get("function") if item.get("type", "function") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise ValueError(
            f"tools[{position}] is not a function tool: expected "
            "{'type': 'function', 'function': {'name': ..., 'parameters': {...}}}"
        )
    return Tool(
        name=function["name"],
        description=str(function.get("description", "")),
        parameters=function.get("parameters") or {"type": "object", "properties": {}},
    )


def _docstring_parts(function: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    doc = inspect.getdoc(function) or ""
    summary = doc.split("\n\n", 1)[0].strip()
    described: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            in_args = True
            continue
        if in_args:
            if line.strip() and not line.startswith((" ", "\t")):
                in_args = False
                continue
            match = _ARG_LINE.match(line)
            if match:
                described[match.group(1)] = match.group(2).strip()
    return summary, described


def _function_tool(function: Callable[..., Any]) -> Tool:
    name = _NAME.sub("_", getattr(function, "__name__", "tool"))
    summary, described = _docstring_parts(function)
    try:
        hints = inspect.get_annotations(function, eval_str=True)
    except Exception:  # unresolvable hints: the arguments are described as Any
        hints = {}
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = hints.get(parameter.name, Any)
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    model = create_model(  # type: ignore[call-overload]
        f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    schema = model.model_json_schema()
    schema.pop("title", None)
    for field_name, text in described.items():
        if field_name in schema.get("properties", {}):
            schema["properties"][field_name]["description"] = text
    return Tool(
        name=name,
        description=summary or name,
        parameters=schema,
        target=function,
        arguments_model=model,
    )


def _node_tool(node: Node) -> Tool:
    properties: dict[str, Any] = {}
    required = []
    for name, parameter in node.parameters.items():
        kind = _JSON_TYPES.get(parameter.type)
        properties[name] = {"type": kind} if kind else {}
        if parameter.description:
            properties[name]["description"] = parameter.description
        if parameter.required and parameter.default is None and name not in node.config:
            required.append(name)
    description = node.metadata.description or node.type_name()
    return Tool(
        name=_NAME.sub("_", node.id),
        description=description.split("\n\n", 1)[0].strip(),
        parameters={"type": "object", "properties": properties, "required": required},
        target=node,
    )


def result_text(value: Any) -> str:
    """A tool's result as the text given back to the model."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)
