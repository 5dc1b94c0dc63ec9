"""A local server that speaks the OpenAI chat-completions and Ollama chat protocols,
for tests and notebooks that exercise LLM code without a real model.

It answers from a script of replies, then from a deterministic default (see
:func:`default_reply`), on the real wire formats: JSON bodies, server-sent events
with tool-call deltas split over chunks and a final usage chunk, Ollama's NDJSON,
error bodies, and 429s with ``Retry-After``::

    from kailash_nb.testing.llm_server import LLMServer, rate_limited, text

    with LLMServer([rate_limited(retry_after=0), text("Paris")]) as server:
        agent = LLMAgentNode(provider="openai", model="gpt-4o-mini",
                             base_url=server.openai_base_url, api_key="sk-test",
                             allow_private_network=True)
        agent.execute(messages=[{"role": "user", "content": "Capital of France?"}])
        server.requests[-1].body["messages"]

It listens on 127.0.0.1 at a free port, in a background thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import tornado.web

from kailash_nb._loopback_server import LoopbackServer
from kailash_nb.testing._llm_replies import (
    Reply,
    default_reply,
    error,
    rate_limited,
    text,
    tool_call,
    word_count,
)

__all__ = [
    "LLMServer",
    "RecordedRequest",
    "Reply",
    "default_reply",
    "error",
    "rate_limited",
    "text",
    "tool_call",
]

# Tool-call arguments are sent in pieces this long, as OpenAI's streams do.
_ARGUMENT_PIECE = 7
_REDACTED = "<redacted>"


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server got: ``protocol`` (``"openai"`` or ``"ollama"``), ``path``,
    ``headers`` (lower-case names; ``authorization`` redacted) and the JSON ``body``.

    ``authorized`` says whether an OpenAI request carried the server's ``api_key``
    (``None`` when the server checks no key, and for Ollama requests)."""

    protocol: str
    path: str
    headers: dict[str, str]
    body: Any
    authorized: bool | None


class LLMServer:
    """The local protocol server; a context manager, or ``start()`` / ``stop()``.

    Args:
        script: replies to give, in order, to whichever protocol asks next.
        api_key: when set, OpenAI requests must carry ``Authorization: Bearer
            <api_key>``; others get a 401 whose message quotes the key they sent (so
            tests can check a client never repeats it).

    Attributes:
        requests: every request received, in order.
    """

    def __init__(self, script: Iterable[Reply] = (), *, api_key: str | None = None) -> None:
        self._script: deque[Reply] = deque(script)
        self._lock = threading.Lock()
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self._server = LoopbackServer(
            tornado.web.Application(
                [
                    (r"/v1/chat/completions", _OpenAIHandler, {"server": self}),
                    (r"/api/chat", _OllamaHandler, {"server": self}),
                ],
                log_function=lambda handler: None,
            ),
            thread_name="kailash-nb-llm-server",
        )

    # -- the script ------------------------------------------------------------------
    def add(self, *replies: Reply) -> None:
        """Append ``replies`` to the script."""
        with self._lock:
            self._script.extend(replies)

    def next_reply(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], schema: Any
    ) -> Reply:
        """The next scripted reply, or the default one for this conversation."""
        with self._lock:
            if self._script:
                return self._script.popleft()
        return default_reply(messages, tools, schema if isinstance(schema, dict) else None)

    @property
    def pending(self) -> int:
        """Scripted replies not given yet."""
        with self._lock:
            return len(self._script)

    # -- addresses -------------------------------------------------------------------
    @property
    def port(self) -> int | None:
        """The port listened on, while running."""
        return self._server.port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        if self.port is None:
            raise RuntimeError("the LLM server is not running; call start() first")
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The OpenAI provider's ``base_url`` (ends in ``/v1``)."""
        return self.base_url + "/v1"

    @property
    def ollama_base_url(self) -> str:
        """The Ollama provider's ``base_url``."""
        return self.base_url

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> LLMServer:
        """Listen on a free 127.0.0.1 port and serve from a background thread; the
        socket listens before this returns.

        Raises:
            RuntimeError: it is already running.
        """
        if self._server.running:
            raise RuntimeError("the LLM server is already running")
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and end the thread; stopping a stopped server does nothing."""
        self._server.stop()

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _record(self, protocol: str, handler: tornado.web.RequestHandler, body: Any) -> bool | None:
        headers = {name.lower(): value for name, value in handler.request.headers.get_all()}
        authorized = None
        if self.api_key is not None and protocol == "openai":
            authorized = headers.get("authorization") == f"Bearer {self.api_key}"
        if "authorization" in headers:
            headers["authorization"] = _REDACTED
        with self._lock:
            self.requests.append(
                RecordedRequest(protocol, handler.request.path, headers, body, authorized)
            )
        return authorized


class _ChatHandler(tornado.web.RequestHandler):
    """What both protocols share: reading the request, the script, delays, errors."""

    protocol = ""

    def initialize(self, server: LLMServer) -> None:
        self.server = server

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError:
            body = None
        authorized = self.server._record(self.protocol, self, body)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            await self.send_error_body(400, "the body must be a JSON object with 'messages'")
            return
        if self.protocol == "openai" and authorized is False:
            sent = self.request.headers.get("Authorization", "").removeprefix("Bearer ")
            await self.send_error_body(
                401,
                f"Incorrect API key provided: {sent}.",
                error_type="invalid_request_error",
                code="invalid_api_key",
            )
            return
        reply = self.server.next_reply(body["messages"], body.get("tools") or [], self.schema(body))
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.retry_after is not None:
            self.set_header("Retry-After", reply.retry_after)
        if reply.status >= 400:
            await self.send_error_body(
                reply.status, reply.error or "error", reply.error_type, reply.error_code
            )
            return
        usage = reply.usage or (
            word_count(body["messages"]),
            max(len((reply.content or "").split()), 1),
        )
        if body.get("stream", self.protocol == "ollama"):
            await self.stream(body, reply, usage)
        else:
            self.write(self.whole(body, reply, usage))

    def schema(self, body: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def send_error_body(
        self, status: int, message: str, error_type: str | None = None, code: str | None = None
    ) -> None:
        raise NotImplementedError

    async def stream(self, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> None:
        raise NotImplementedError

    def whole(self, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> dict[str, Any]:
        raise NotImplementedError


def _pieces(content: str, size: int) -> list[str]:
    return [content[start : start + size] for start in range(0, len(content), size)] or [""]


class _OpenAIHandler(_ChatHandler):
    protocol = "openai"

    def schema(self, body: dict[str, Any]) -> Any:
        response_format = body.get("response_format") or {}
        return (response_format.get("json_schema") or {}).get("schema")

    async def send_error_body(
        self, status: int, message: str, error_type: str | None = None, code: str | None = None
    ) -> None:
        self.set_status(status)
        self.write({"error": {"message": message, "type": error_type, "param": None, "code": code}})

    def _base(self, body: dict[str, Any], kind: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": kind,
            "created": int(time.time()),
            "model": body.get("model", ""),
        }

    @staticmethod
    def _finish(reply: Reply) -> str:
        return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")

    def whole(self, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{index}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
                for index, (name, arguments) in enumerate(reply.tool_calls)
            ]
        return {
            **self._base(body, "chat.completion"),
            "choices": [{"index": 0, "message": message, "finish_reason": self._finish(reply)}],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
            },
        }

    async def stream(self, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        base = self._base(body, "chat.completion.chunk")

        async def send(
            delta: dict[str, Any] | None, finish: str | None = None, **extra: Any
        ) -> None:
            choices = (
                [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            )
            self.write(f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n")
            await self.flush()

        await send({"role": "assistant", "content": ""})
        if reply.stream_error is not None:
            self.write(
                "data: "
                + json.dumps({"error": {"message": reply.stream_error, "type": "server_error"}})
                + "\n\n"
            )
            return
        for piece in _pieces(reply.content or "", 5) if reply.content else []:
            await send({"content": piece})
        for index, (name, arguments) in enumerate(reply.tool_calls):
            opening = {"index": index, "id": f"call_{index}", "type": "function"}
            await send({"tool_calls": [{**opening, "function": {"name": name, "arguments": ""}}]})
            for piece in _pieces(json.dumps(arguments), _ARGUMENT_PIECE):
                await send({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        await send({}, self._finish(reply))
        if (body.get("stream_options") or {}).get("include_usage"):
            await send(
                None,
                usage={
                    "prompt_tokens": usage[0],
                    "completion_tokens": usage[1],
                    "total_tokens": sum(usage),
                },
            )
        self.write("data: [DONE]\n\n")


class _OllamaHandler(_ChatHandler):
    protocol = "ollama"

    def schema(self, body: dict[str, Any]) -> Any:
        return body.get("format")

    async def send_error_body(
        self, status: int, message: str, error_type: str | None = None, code: str | None = None
    ) -> None:
        self.set_status(status)
        self.write({"error": message})

    def _line(self, body: dict[str, Any], message: dict[str, Any], done: bool) -> dict[str, Any]:
        return {
            "model": body.get("model", ""),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "message": {"role": "assistant", **message},
            "done": done,
        }

    @staticmethod
    def _calls(reply: Reply) -> list[dict[str, Any]]:
        return [
            {"function": {"name": name, "arguments": arguments}}
            for name, arguments in reply.tool_calls
        ]

    def _last(
        self, body: dict[str, Any], message: dict[str, Any], reply: Reply, usage: tuple[int, int]
    ) -> dict[str, Any]:
        return {
            **self._line(body, message, True),
            "done_reason": reply.finish_reason or "stop",
            "total_duration": 1000,
            "prompt_eval_count": usage[0],
            "eval_count": usage[1],
        }

    def whole(self, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> dict[str, Any]:
        message: dict[str, Any] = {"content": reply.content or ""}
        if reply.tool_calls:
            message["tool_calls"] = self._calls(reply)
        return self._last(body, message, reply, usage)

    async def stream(self, body: dict[str, Any], reply: Reply, usage: tuple[int, int]) -> None:
        self.set_header("Content-Type", "application/x-ndjson")

        async def send(line: dict[str, Any]) -> None:
            self.write(json.dumps(line) + "\n")
            await self.flush()

        if reply.stream_error is not None:
            await send(self._line(body, {"content": ""}, False))
            await send({"error": reply.stream_error})
            return
        for piece in _pieces(reply.content, 5) if reply.content else []:
            await send(self._line(body, {"content": piece}, False))
        if reply.tool_calls:
            await send(self._line(body, {"content": "", "tool_calls": self._calls(reply)}, False))
        await send(self._last(body, {"content": ""}, reply, usage))
