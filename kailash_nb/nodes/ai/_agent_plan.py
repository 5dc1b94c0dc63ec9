"""The agent node's parameters, and one run's options checked into a ``Plan``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kailash_nb.nodes.ai._structured import OutputSchema, output_schema
from kailash_nb.nodes.ai._tools import Tool, tools_from
from kailash_nb.nodes.ai.providers.base import ChatProvider
from kailash_nb.nodes.ai.providers.types import Usage
from kailash_nb.nodes.node import NodeParameter
from kailash_nb.sdk_exceptions import KailashException

__all__ = [
    "PARAMETERS",
    "PROVIDER_CONFIG_KEYS",
    "Plan",
    "check_options",
    "cost",
    "settings_problems",
]

DEFAULT_MAX_ROUNDS = 5
#: The keys ``provider_config`` accepts.
PROVIDER_CONFIG_KEYS = ("api_key_env", "backoff_factor", "max_retry_wait")


def _parameter(
    name: str, kind: Any, description: str, default: Any = None, required: bool = False
) -> NodeParameter:
    return NodeParameter(
        name=name, type=kind, required=required, default=default, description=description
    )


#: The agent's inputs, with Kailash's names.
PARAMETERS = {
    parameter.name: parameter
    for parameter in (
        _parameter(
            "provider", str, "openai, ollama, or a registered provider's name", required=True
        ),
        _parameter("model", str, "the model's name at the provider", required=True),
        _parameter("messages", list, "the conversation, OpenAI's message format"),
        _parameter("system_prompt", str, "instructions put first in the conversation"),
        _parameter("tools", list, "functions, nodes or OpenAI tool dicts the model may call"),
        _parameter(
            "conversation_id", str, "an id returned with the outputs, for the caller's records"
        ),
        _parameter("generation_config", dict, "temperature, max_tokens, top_p, seed, stop"),
        _parameter("streaming", bool, "receive the answer in chunks (assembled)", False),
        _parameter("timeout", float, "seconds per connect, read or write", 120.0),
        _parameter("max_retries", int, "extra attempts after a transient failure or a 429", 3),
        _parameter(
            "response_format", None, "a pydantic model class or JSON schema the answer must follow"
        ),
        _parameter(
            "custom_pricing", dict, "USD per 1K tokens: prompt_token_cost, completion_token_cost"
        ),
        _parameter("auto_execute_tools", bool, "run the tools the model calls", True),
        _parameter(
            "tool_execution_config", dict, "max_rounds: rounds of tool calls allowed (default 5)"
        ),
    )
}


@dataclass(frozen=True)
class Plan:
    """One run's checked options (``provider`` is ``None`` only when checking a
    config at build that names none)."""

    provider_name: str
    provider: ChatProvider
    model: str
    messages: list[dict[str, Any]]
    tools: list[Tool]
    schema: OutputSchema | None
    generation_config: dict[str, Any]
    streaming: bool
    auto_execute_tools: bool
    max_rounds: int
    pricing: tuple[float, float] | None
    conversation_id: str | None


def settings_problems(config: dict[str, Any]) -> list[str]:
    """What is wrong with the config-only settings of an agent node."""
    problems = []
    allow = config.get("allow_private_network", False)
    if not isinstance(allow, bool):
        problems.append(f"allow_private_network must be True or False, got {allow!r}")
    for key in ("base_url", "api_key"):
        value = config.get(key)
        if value is not None and not isinstance(value, str):
            problems.append(f"{key} must be a string")
    provider_config = config.get("provider_config") or {}
    if not isinstance(provider_config, dict):
        problems.append("provider_config must be a dict")
    else:
        unknown = sorted(set(provider_config) - set(PROVIDER_CONFIG_KEYS))
        if unknown:
            problems.append(
                f"provider_config keys {unknown} are not known; the keys are "
                f"{list(PROVIDER_CONFIG_KEYS)}"
            )
    return problems


def check_options(
    options: dict[str, Any],
    provider_for: Callable[[str, dict[str, Any]], ChatProvider],
    *,
    at_build: bool = False,
) -> tuple[Plan, list[str]]:
    """``options`` checked into a ``Plan``, and every problem found (the plan is only
    usable when there are none). At build, a missing conversation is not a problem."""
    problems: list[str] = []
    provider_name = options.get("provider")
    provider: Any = None
    if provider_name is not None:
        try:
            provider = provider_for(str(provider_name), options)
        except KailashException as exc:
            problems.append(str(exc))
    tools: list[Tool] = []
    try:
        tools = tools_from(options.get("tools") or [])
    except ValueError as exc:
        problems.append(str(exc))
    schema = None
    try:
        schema = output_schema(options.get("response_format"))
    except ValueError as exc:
        problems.append(str(exc))
    pricing = _pricing(options.get("custom_pricing"), problems)
    rounds_config = options.get("tool_execution_config") or {}
    max_rounds = rounds_config.get("max_rounds", DEFAULT_MAX_ROUNDS)
    if not isinstance(max_rounds, int) or isinstance(max_rounds, bool) or max_rounds < 0:
        problems.append(
            f"tool_execution_config['max_rounds'] must be 0 or more, got {max_rounds!r}"
        )
        max_rounds = DEFAULT_MAX_ROUNDS
    messages = _messages(options.get("system_prompt"), options.get("messages") or [], problems)
    if not at_build and not messages and not problems:
        problems.append("there is nothing to send: give messages (or a system_prompt)")
    checked = Plan(
        provider_name=str(provider_name),
        provider=provider,
        model=str(options.get("model")),
        messages=messages,
        tools=tools,
        schema=schema,
        generation_config=dict(options.get("generation_config") or {}),
        streaming=bool(options.get("streaming")),
        auto_execute_tools=options.get("auto_execute_tools", True) is not False,
        max_rounds=max_rounds,
        pricing=pricing,
        conversation_id=options.get("conversation_id"),
    )
    return checked, problems


def _messages(system_prompt: Any, messages: list[Any], problems: list[str]) -> list[dict[str, Any]]:
    """The conversation: the system prompt first, a bare string as a user message."""
    checked: list[dict[str, Any]] = []
    if system_prompt:
        checked.append({"role": "system", "content": str(system_prompt)})
    for position, message in enumerate(messages):
        if isinstance(message, str):
            message = {"role": "user", "content": message}
        if not isinstance(message, dict) or "role" not in message:
            problems.append(f"messages[{position}] must be a dict with 'role' and 'content'")
            continue
        checked.append(dict(message))
    return checked


def _pricing(custom: Any, problems: list[str]) -> tuple[float, float] | None:
    """``custom_pricing`` (USD per 1K tokens, Kailash's keys) as USD per 1M tokens."""
    if not custom:
        return None
    try:
        prompt = float(custom["prompt_token_cost"])
        completion = float(custom["completion_token_cost"])
    except (KeyError, TypeError, ValueError):
        problems.append(
            "custom_pricing must give numbers for 'prompt_token_cost' and "
            "'completion_token_cost' (USD per 1K tokens)"
        )
        return None
    if prompt < 0 or completion < 0:
        problems.append("custom_pricing costs must be 0 or more")
        return None
    return prompt * 1000, completion * 1000


def cost(usage: Usage | None, price: tuple[float, float] | None) -> float | None:
    """USD for ``usage`` at ``price`` (per 1M tokens); ``None`` when either is unknown."""
    if usage is None or price is None:
        return None
    if usage.prompt_tokens is None or usage.completion_tokens is None:
        return None
    return round((usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6, 10)
