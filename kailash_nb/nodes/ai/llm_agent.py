"""``LLMAgentNode``: chat with a model through a provider, run the tools it calls,
and return its answer with the tokens used and what they cost.

The conversation is written once, as a generator (``_conversation``) that yields what
to do next: a ``ChatRequest`` to send or a tool call to run. ``run`` drives it with
the provider's sync client and calls tools directly; ``async_run`` drives it with
the async client and runs sync tools in worker threads, so the event loop never
blocks. Each step is reported with ``report_step`` (``prompt_sent``, ``tool_call``,
``tool_result``, ``answer``) for the widget and the gateway's event streams.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, ClassVar

from kailash_nb._loop_thread import run_blocking
from kailash_nb.nodes.ai._agent_plan import (
    PARAMETERS,
    Plan,
    check_options,
    cost,
    settings_problems,
)
from kailash_nb.nodes.ai._mcp_tools import mcp_server_specs, mcp_tools
from kailash_nb.nodes.ai._structured import SchemaMismatch
from kailash_nb.nodes.ai._tools import Tool, result_text
from kailash_nb.nodes.ai.errors import StructuredOutputError, ToolRoundsExhaustedError
from kailash_nb.nodes.ai.providers.base import ChatProvider
from kailash_nb.nodes.ai.providers.registry import get_provider
from kailash_nb.nodes.ai.providers.types import ChatRequest, ChatResult, ToolCall, Usage
from kailash_nb.nodes.base_async import AsyncNode
from kailash_nb.nodes.mcp import MCPClient
from kailash_nb.nodes.node import Node, NodeParameter
from kailash_nb.nodes.registry import register_node
from kailash_nb.nodes.steps import report_step
from kailash_nb.sdk_exceptions import (
    NodeConfigurationError,
    NodeValidationError,
)

__all__ = ["LLMAgentNode"]

_PREVIEW = 200


@dataclass(frozen=True)
class _Outcome:
    """What running one tool call gave: ``ok`` and the text the model gets back."""

    ok: bool
    text: str


@register_node()
class LLMAgentNode(AsyncNode):
    """Ask a model through a provider; run the tools it calls; validate its answer.

    Usage::

        agent = LLMAgentNode(provider="openai", model="gpt-4o-mini", tools=[get_weather])
        out = agent.execute(messages=[{"role": "user", "content": "Weather in Oslo?"}])
        out["response"]["content"], out["usage"]["cost"]

    Inputs (Kailash's names): ``provider`` and ``model`` (required), ``messages``,
    ``system_prompt``, ``tools`` (Python functions, their schema from the signature
    and docstring; nodes, their schema from ``get_parameters``; or OpenAI tool dicts,
    offered but not run), ``generation_config``, ``streaming``, ``timeout``,
    ``max_retries``, ``response_format`` (a pydantic model class or JSON schema),
    ``custom_pricing``, ``auto_execute_tools``, ``tool_execution_config``
    (``{"max_rounds": n}``, default 5) and ``conversation_id``.

    Config only (set by the workflow author, never inputs): ``base_url``,
    ``api_key`` (prefer the environment: ``OPENAI_API_KEY`` for openai, or the
    variable named by ``provider_config["api_key_env"]``), ``allow_private_network``
    (reach a server on this machine or a private network) and ``provider_config``
    (``api_key_env``, ``backoff_factor``, ``max_retry_wait``), and ``mcp_servers``
    (MCP servers whose tools the model is offered, as for ``MCPToolNode``'s
    ``mcp_server``: URLs or dicts; ``allow_private_network`` also applies to them).

    MCP tools: at each run every server in ``mcp_servers`` is asked for its tools
    (names, descriptions, input schemas), which are offered beside ``tools``; the
    model's calls go through one session per server kept on the node (per event
    loop), with the run's ``timeout`` and ``max_retries``. A tool's ``isError``
    answer goes back to the model as ``"error: ..."``, like a failing function.

    The tool loop: while the model asks for tools, each is run and its result (or the
    error it raised, as ``"error: ..."``) is sent back, for at most ``max_rounds``
    rounds. A call to a tool given only as a dict, or ``auto_execute_tools=False``,
    ends the loop and returns the calls in ``response["tool_calls"]``.

    Outputs: ``success`` (True; failures raise), ``response`` (``content``, ``role``,
    ``tool_calls``, ``finish_reason``, ``model``, ``tool_execution_rounds``),
    ``structured_output`` (the validated answer, with ``response_format``), ``usage``
    (``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``cost`` in USD
    over every round: ``None`` when a count or the model's price is unknown, never a
    made-up 0; also as Kailash's ``estimated_cost_usd``), ``tool_results`` (each
    call run: ``tool``, ``call_id``, ``arguments``, ``ok``, ``result``),
    ``conversation_id``, ``context`` and ``metadata`` (``provider``, ``model``,
    ``streaming``, ``rounds``).

    Nothing is contacted when the node is built; the API key is read at each run and
    never appears in outputs, errors or steps.

    Raises:
        NodeConfigurationError: an unknown provider, bad config-only settings, bad
            tools or ``response_format`` in the config (at build).
        NodeValidationError: the same problems in inputs, or no messages.
        ProviderError: the provider failed (status, message, provider and model named).
        ToolRoundsExhaustedError: the model still called tools after ``max_rounds``.
        StructuredOutputError: the answer does not follow ``response_format`` (the
            field is named).
        MCPError: a server in ``mcp_servers`` could not be asked for its tools (see
            ``kailash_nb.nodes.mcp.errors``).
    """

    config_only_keys: ClassVar[frozenset[str]] = frozenset(
        {"base_url", "api_key", "allow_private_network", "provider_config", "mcp_servers"}
    )

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._lock = threading.Lock()
        self._providers: dict[tuple[str, float, int], ChatProvider] = {}
        # Settings first: a provider cannot be made from malformed ones.
        problems = settings_problems(self.config)
        if not problems:
            problems = check_options(self.config, self._provider, at_build=True)[1]
        try:
            self._mcp_servers = mcp_server_specs(self.config.get("mcp_servers"))
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise NodeConfigurationError(f"{self._label()}: {'; '.join(problems)}")
        self._mcp = (
            MCPClient(
                subject=self._label(),
                allow_private_network=self.config.get("allow_private_network", False),
            )
            if self._mcp_servers
            else None
        )

    def get_parameters(self) -> dict[str, NodeParameter]:
        """Kailash's agent inputs; ``provider`` and ``model`` are required."""
        return dict(PARAMETERS)

    # -- the two drivers ---------------------------------------------------------------
    def run(self, **kwargs: Any) -> dict[str, Any]:
        """Run the conversation from synchronous code (also inside a running loop)."""
        checked = self._plan(kwargs)
        if self._mcp is not None:
            checked = run_blocking(self._with_mcp_tools(checked, kwargs))
        conversation = self._conversation(checked)
        try:
            step = next(conversation)
            while True:
                if isinstance(step, ChatRequest):
                    reply: Any = checked.provider.chat(step)
                else:
                    tool, call = step
                    try:
                        reply = _Outcome(True, result_text(tool.run(call.arguments or {})))
                    except Exception as exc:  # a failing tool is the model's to handle
                        reply = _failed(exc)
                step = conversation.send(reply)
        except StopIteration as finished:
            return finished.value

    async def async_run(self, **kwargs: Any) -> dict[str, Any]:
        """Run the conversation without blocking the event loop."""
        checked = self._plan(kwargs)
        if self._mcp is not None:
            checked = await self._with_mcp_tools(checked, kwargs)
        conversation = self._conversation(checked)
        try:
            step = next(conversation)
            while True:
                if isinstance(step, ChatRequest):
                    reply: Any = await checked.provider.achat(step)
                else:
                    tool, call = step
                    try:
                        reply = _Outcome(
                            True, result_text(await tool.run_async(call.arguments or {}))
                        )
                    except Exception as exc:  # a failing tool is the model's to handle
                        reply = _failed(exc)
                step = conversation.send(reply)
        except StopIteration as finished:
            return finished.value

    def execute(self, **inputs: Any) -> dict[str, Any]:
        """Run on its own from synchronous code, with the sync client; see ``Node.execute``."""
        return Node.execute(self, **inputs)

    def close(self) -> None:
        """Close the providers' pooled connections and MCP sessions of sync runs; a
        later run opens new ones."""
        with self._lock:
            providers = list(self._providers.values())
        for provider in providers:
            provider.close()
        if self._mcp is not None:
            self._mcp.close()

    async def aclose(self) -> None:
        """Close the providers' pooled connections and MCP sessions of the running
        event loop."""
        with self._lock:
            providers = list(self._providers.values())
        for provider in providers:
            await provider.aclose()
        if self._mcp is not None:
            await self._mcp.aclose()

    # -- the conversation -----------------------------------------------------------
    def _conversation(
        self, plan: Plan
    ) -> Generator[ChatRequest | tuple[Tool, ToolCall], ChatResult | _Outcome, dict[str, Any]]:
        messages = list(plan.messages)
        by_name = {tool.name: tool for tool in plan.tools}
        usage: Usage | None = Usage(0, 0)
        executed: list[dict[str, Any]] = []
        rounds = 0
        while True:
            report_step(
                "prompt_sent",
                round=rounds + 1,
                provider=plan.provider_name,
                model=plan.model,
                messages=len(messages),
            )
            result = yield ChatRequest(
                model=plan.model,
                messages=list(messages),
                tools=[tool.definition() for tool in plan.tools],
                generation_config=plan.generation_config,
                response_schema=plan.schema.schema if plan.schema else None,
                response_schema_name=plan.schema.name if plan.schema else "response",
                stream=plan.streaming,
            )
            assert isinstance(result, ChatResult)
            usage = usage + result.usage if usage is not None and result.usage else None
            runnable = plan.auto_execute_tools and all(
                by_name.get(call.name) is None or by_name[call.name].target is not None
                for call in result.tool_calls
            )
            if not result.tool_calls or not runnable:
                return self._outputs(plan, result, usage, rounds, executed)
            if rounds >= plan.max_rounds:
                raise ToolRoundsExhaustedError(
                    f"{self._label()}: the model still called tools "
                    f"({', '.join(call.name for call in result.tool_calls)}) after "
                    f"max_rounds={plan.max_rounds} rounds of tool calls; raise "
                    "tool_execution_config['max_rounds'] or make the task simpler",
                    rounds=rounds,
                    pending=[call.name for call in result.tool_calls],
                )
            rounds += 1
            messages.append(
                {
                    "role": "assistant",
                    "content": result.content,
                    "tool_calls": [call.to_message() for call in result.tool_calls],
                }
            )
            for call in result.tool_calls:
                report_step(
                    "tool_call", tool=call.name, arguments=call.raw_arguments, call_id=call.id
                )
                tool = by_name.get(call.name)
                if tool is None:
                    outcome = _Outcome(
                        False,
                        f"error: there is no tool named {call.name!r}; "
                        f"the tools are {sorted(by_name)}",
                    )
                elif call.arguments is None:
                    outcome = _Outcome(
                        False,
                        "error: the arguments are not a JSON object: "
                        f"{call.raw_arguments[:_PREVIEW]}",
                    )
                else:
                    reply = yield tool, call
                    assert isinstance(reply, _Outcome)
                    outcome = reply
                report_step(
                    "tool_result", tool=call.name, ok=outcome.ok, preview=outcome.text[:_PREVIEW]
                )
                executed.append(
                    {
                        "tool": call.name,
                        "call_id": call.id,
                        "arguments": call.arguments,
                        "ok": outcome.ok,
                        "result": outcome.text,
                    }
                )
                messages.append({"role": "tool", "tool_call_id": call.id, "content": outcome.text})

    def _outputs(
        self,
        plan: Plan,
        result: ChatResult,
        usage: Usage | None,
        rounds: int,
        executed: list[dict[str, Any]],
    ) -> dict[str, Any]:
        usage_out = {
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "total_tokens": usage.total_tokens if usage else None,
            "cost": cost(usage, plan.pricing or plan.provider.price(plan.model)),
        }
        usage_out["estimated_cost_usd"] = usage_out["cost"]  # Kailash's name
        report_step(
            "answer",
            content=(result.content or "")[:_PREVIEW],
            finish_reason=result.finish_reason,
            usage=usage_out,
        )
        structured = None
        if plan.schema is not None and not result.tool_calls:
            try:
                structured = plan.schema.validate(result.content)
            except SchemaMismatch as exc:
                raise StructuredOutputError(
                    f"{self._label()}: the answer does not follow response_format "
                    f"{plan.schema.name!r}: {exc}",
                    field=exc.field,
                    content=result.content,
                ) from None
        return {
            "success": True,
            "response": {
                "content": result.content,
                "role": "assistant",
                "tool_calls": [call.to_message() for call in result.tool_calls],
                "finish_reason": result.finish_reason,
                "model": result.model,
                "tool_execution_rounds": rounds,
            },
            "structured_output": structured,
            "usage": usage_out,
            "tool_results": executed,
            "conversation_id": plan.conversation_id,
            "context": {"tools_available": len(plan.tools), "tools_executed": len(executed)},
            "metadata": {
                "provider": plan.provider_name,
                "model": plan.model,
                "streaming": plan.streaming,
                "generation_config": plan.generation_config,
                "rounds": rounds + 1,
            },
        }

    # -- options ----------------------------------------------------------------------
    def _plan(self, kwargs: dict[str, Any]) -> Plan:
        """This run's options; raises ``NodeValidationError`` naming every problem."""
        checked, problems = check_options(kwargs, self._provider)
        if problems:
            raise NodeValidationError(f"{self._label()}: {'; '.join(problems)}")
        return checked

    async def _with_mcp_tools(self, plan: Plan, kwargs: dict[str, Any]) -> Plan:
        """``plan`` with the MCP servers' tools added after its own.

        Raises:
            NodeValidationError: an MCP tool has the name of another tool.
            MCPError: a server could not be listed.
        """
        assert self._mcp is not None
        retries = kwargs.get("max_retries")
        listed = await mcp_tools(
            self._mcp,
            self._mcp_servers,
            timeout=float(kwargs.get("timeout") or 120.0),
            retries=int(retries) if retries is not None else 3,
        )
        names = {tool.name for tool in plan.tools}
        for tool in listed:
            if tool.name in names:
                raise NodeValidationError(
                    f"{self._label()}: two tools are named {tool.name!r} (one from "
                    "mcp_servers); rename the function or node tool"
                )
            names.add(tool.name)
        return dataclasses.replace(plan, tools=[*plan.tools, *listed])

    def _provider(self, name: str, kwargs: dict[str, Any]) -> ChatProvider:
        """The node's provider for ``name`` at this run's timeout and retries, made on
        first use (making one contacts nothing).

        A provider whose server is local by design (Ollama) reaches loopback only when
        the workflow's author chose it in the node's config: a caller who switches
        the ``provider`` input gets no access to this machine's services.
        """
        timeout = float(kwargs.get("timeout") or 120.0)
        retries = int(kwargs.get("max_retries") if kwargs.get("max_retries") is not None else 3)
        key = (name, timeout, retries)
        with self._lock:
            provider = self._providers.get(key)
            if provider is None:
                settings = self.config.get("provider_config") or {}
                provider = self._providers[key] = get_provider(name)(
                    base_url=self.config.get("base_url"),
                    api_key=self.config.get("api_key"),
                    api_key_env=settings.get("api_key_env"),
                    allow_private_network=self.config.get("allow_private_network", False),
                    allow_loopback=None if self.config.get("provider") == name else False,
                    timeout=timeout,
                    max_retries=retries,
                    backoff_factor=settings.get("backoff_factor", 0.5),
                    max_retry_wait=settings.get("max_retry_wait", 60.0),
                )
            return provider


def _failed(exc: BaseException) -> _Outcome:
    return _Outcome(False, f"error: {type(exc).__name__}: {exc}")
