"""A tool's ``CallToolResult`` as node outputs and as text for a model."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["model_text", "outputs", "result_value", "text_of"]


def _blocks(result: Any) -> list[dict[str, Any]]:
    return [
        block.model_dump(mode="json", by_alias=True, exclude_none=True) for block in result.content
    ]


def text_of(result: Any) -> str:
    """The text blocks of ``result`` joined by newlines (Kailash's ``content`` output)."""
    return "\n".join(block.text for block in result.content if block.type == "text")


def result_value(result: Any) -> Any:
    """The tool's result: its ``structuredContent`` when the server sent one; else the
    text of a single text block; else the content blocks (text blocks as their text,
    others as JSON dicts: images, audio, resources)."""
    if result.structuredContent is not None:
        return result.structuredContent
    content = result.content
    if len(content) == 1 and content[0].type == "text":
        return content[0].text
    return [
        block.text if block.type == "text" else dumped
        for block, dumped in zip(content, _blocks(result), strict=True)
    ]


def outputs(result: Any, *, tool: str, server: str, attempts: int) -> dict[str, Any]:
    """The node outputs for a successful call."""
    return {
        "success": True,
        "result": result_value(result),
        "content": text_of(result),
        "content_blocks": _blocks(result),
        "structured_content": result.structuredContent,
        "tool_name": tool,
        "server": server,
        "attempts": attempts,
    }


def model_text(result: Any) -> str:
    """What a model is given back for a successful call."""
    if result.structuredContent is not None:
        return json.dumps(result.structuredContent, default=str)
    return text_of(result) or json.dumps(_blocks(result))
