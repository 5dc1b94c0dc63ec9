"""LLMAgentNode against the local protocol server: the tool loop, structured output,
usage and cost, sync and async, in workflows, steps, and keeping the key secret."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading

import pytest
from pydantic import BaseModel

from kailash_nb.nodes.ai import LLMAgentNode
from kailash_nb.nodes.ai.errors import (
    ProviderError,
    StructuredOutputError,
    ToolRoundsExhaustedError,
)
from kailash_nb.nodes.base import Node, NodeParameter
from kailash_nb.nodes.steps import step_receiver
from kailash_nb.runtime.async_local import AsyncLocalRuntime
from kailash_nb.runtime.local import LocalRuntime
from kailash_nb.sdk_exceptions import NodeConfigurationError, NodeValidationError
from kailash_nb.testing.llm_server import Reply, error, text, tool_call
from kailash_nb.workflow.builder import WorkflowBuilder


def add(a: int, b: int = 0) -> int:
    """Add two whole numbers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b


def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"tool broke: {reason}")


class Address(BaseModel):
    city: str
    zip_code: str


def ship(to: Address, weight_kg: float) -> str:
    """Ship a parcel."""
    return f"{weight_kg} kg to {to.city} ({to.zip_code})"


class Multiply(Node):
    """Multiply a value by a factor."""

    def get_parameters(self):
        return {
            "value": NodeParameter(name="value", type=float, required=True, description="x"),
            "factor": NodeParameter(name="factor", type=float, required=False, default=2.0),
        }

    def run(self, value, factor):
        return {"result": value * factor}


class City(BaseModel):
    name: str
    population: int


def agent(server, provider="openai", **config):
    base_url = server.openai_base_url if provider == "openai" else server.ollama_base_url
    config.setdefault("model", "gpt-4o-mini")
    return LLMAgentNode(
        provider=provider,
        base_url=base_url,
        api_key=server.api_key,
        allow_private_network=True,
        **config,
    )


def ask(content):
    return [{"role": "user", "content": content}]


# -- the tool loop ---------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "ollama"])
@pytest.mark.parametrize("streaming", [False, True])
def test_function_tool_is_called_and_its_result_answered(llm_server, provider, streaming):
    node = agent(llm_server, provider, tools=[add], streaming=streaming)
    out = node.execute(messages=ask('{"a": 2, "b": 40}'))
    assert out["success"] is True
    assert out["response"]["content"] == "The tool said: 42"
    assert out["response"]["finish_reason"] == "stop"
    assert out["response"]["tool_execution_rounds"] == 1
    assert out["tool_results"] == [
        {
            "tool": "add",
            "call_id": out["tool_results"][0]["call_id"],
            "arguments": {"a": 2, "b": 40},
            "ok": True,
            "result": "42",
        }
    ]
    second = llm_server.requests[1].body["messages"]
    assert second[-1]["content"] == "42" and second[-1]["role"] == "tool"


def test_function_schema_comes_from_signature_and_docstring(llm_server):
    agent(llm_server, tools=[add]).execute(messages=ask('{"a": 1}'))
    (offered,) = llm_server.requests[0].body["tools"]
    function = offered["function"]
    assert function["name"] == "add"
    assert function["description"] == "Add two whole numbers."
    parameters = function["parameters"]
    assert parameters["required"] == ["a"]
    assert parameters["properties"]["a"]["type"] == "integer"
    assert parameters["properties"]["a"]["description"] == "the first number"
    assert parameters["properties"]["b"]["default"] == 0


def test_pydantic_model_arguments_are_validated_and_built(llm_server):
    arguments = {"to": {"city": "Oslo", "zip_code": "0150"}, "weight_kg": 2.5}
    llm_server.add(tool_call("ship", arguments))
    out = agent(llm_server, tools=[ship]).execute(messages=ask("ship it"))
    assert out["tool_results"][0]["result"] == "2.5 kg to Oslo (0150)"
    schema = llm_server.requests[0].body["tools"][0]["function"]["parameters"]
    assert "Address" in json.dumps(schema)


def test_arguments_that_do_not_fit_go_back_to_the_model(llm_server):
    llm_server.add(tool_call("add", {"a": "not a number"}))
    out = agent(llm_server, tools=[add]).execute(messages=ask("add"))
    (result,) = out["tool_results"]
    assert result["ok"] is False and "a: Input should be a valid integer" in result["result"]
    assert out["response"]["content"].startswith("The tool said: error:")


def test_node_tool_runs_with_the_model_arguments(llm_server):
    multiply = Multiply(id="multiply")
    llm_server.add(tool_call("multiply", {"value": 21, "factor": 2}))
    out = agent(llm_server, tools=[multiply]).execute(messages=ask("double 21"))
    assert json.loads(out["tool_results"][0]["result"]) == {"result": 42.0}
    function = llm_server.requests[0].body["tools"][0]["function"]
    assert function["description"] == "Multiply a value by a factor."
    assert function["parameters"]["required"] == ["value"]
    assert function["parameters"]["properties"]["value"] == {"type": "number", "description": "x"}


def test_a_tool_that_raises_is_an_error_result_not_a_failure(llm_server):
    out = agent(llm_server, tools=[explode]).execute(messages=ask("boom"))
    (result,) = out["tool_results"]
    assert result["ok"] is False
    assert result["result"] == "error: RuntimeError: tool broke: boom"
    assert out["response"]["content"] == "The tool said: error: RuntimeError: tool broke: boom"


def test_a_call_to_an_unknown_tool_goes_back_to_the_model(llm_server):
    llm_server.add(tool_call("nope", {}))
    out = agent(llm_server, tools=[add]).execute(messages=ask("x"))
    assert out["tool_results"][0]["ok"] is False
    assert "no tool named 'nope'" in out["tool_results"][0]["result"]


def test_max_rounds_exhausted_is_a_typed_failure(llm_server):
    llm_server.add(*[tool_call("add", {"a": n}) for n in range(3)])
    node = agent(llm_server, tools=[add], tool_execution_config={"max_rounds": 2})
    with pytest.raises(ToolRoundsExhaustedError, match="after max_rounds=2") as caught:
        node.execute(messages=ask("loop"))
    assert caught.value.rounds == 2 and caught.value.pending == ["add"]
    assert len(llm_server.requests) == 3


def test_max_rounds_zero_allows_no_tool_call(llm_server):
    node = agent(llm_server, tools=[add], tool_execution_config={"max_rounds": 0})
    with pytest.raises(ToolRoundsExhaustedError):
        node.execute(messages=ask('{"a": 1}'))


def test_without_auto_execute_the_calls_are_returned(llm_server):
    out = agent(llm_server, tools=[add], auto_execute_tools=False).execute(messages=ask('{"a": 1}'))
    (call,) = out["response"]["tool_calls"]
    assert call["function"] == {"name": "add", "arguments": '{"a": 1}'}
    assert out["response"]["finish_reason"] == "tool_calls" and out["tool_results"] == []


def test_dict_tools_are_offered_and_their_calls_returned(llm_server):
    spec = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    llm_server.add(tool_call("lookup", {"q": "x"}))
    out = agent(llm_server, tools=[spec]).execute(messages=ask("x"))
    assert out["response"]["tool_calls"][0]["function"]["name"] == "lookup"
    assert len(llm_server.requests) == 1


def test_system_prompt_comes_first(llm_server):
    agent(llm_server, system_prompt="Be brief.").execute(messages=ask("hi"))
    assert llm_server.requests[0].body["messages"][0] == {"role": "system", "content": "Be brief."}


# -- structured output --------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_structured_output_with_a_pydantic_model(llm_server, provider):
    llm_server.add(text('{"name": "Oslo", "population": 709000}'))
    out = agent(llm_server, provider, response_format=City).execute(messages=ask("Oslo"))
    assert out["structured_output"] == {"name": "Oslo", "population": 709000}
    body = llm_server.requests[0].body
    sent = (
        body["response_format"]["json_schema"]["schema"] if provider == "openai" else body["format"]
    )
    assert sent["required"] == ["name", "population"]


def test_structured_output_invalid_names_the_field(llm_server):
    llm_server.add(text('{"name": "Oslo", "population": "many"}'))
    with pytest.raises(StructuredOutputError, match="field 'population'") as caught:
        agent(llm_server, response_format=City).execute(messages=ask("Oslo"))
    assert caught.value.field == "population"


def test_structured_output_that_is_not_json(llm_server):
    llm_server.add(text("Oslo has 709000 people"))
    with pytest.raises(StructuredOutputError, match="not JSON") as caught:
        agent(llm_server, response_format=City).execute(messages=ask("Oslo"))
    assert caught.value.field == ""


def test_structured_output_with_a_json_schema(llm_server):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    node = agent(llm_server, response_format=schema)
    assert node.execute(messages=ask("give 7"))["structured_output"] == {"n": 7}
    llm_server.add(text('{"n": "seven"}'))
    with pytest.raises(StructuredOutputError, match="field 'n'"):
        node.execute(messages=ask("give 7"))


# -- usage and cost -----------------------------------------------------------------------


def test_usage_and_cost_add_up_over_rounds(llm_server):
    llm_server.add(tool_call("add", {"a": 1}, usage=(1000, 10)), text("1", usage=(2000, 20)))
    out = agent(llm_server, tools=[add]).execute(messages=ask("x"))
    usage = out["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (
        3000,
        30,
        3030,
    )
    # gpt-4o-mini: 0.15 / 0.60 USD per million tokens
    assert usage["cost"] == pytest.approx((3000 * 0.15 + 30 * 0.60) / 1e6)


def test_custom_pricing_is_per_1k_tokens(llm_server):
    llm_server.add(text("x", usage=(1000, 500)))
    pricing = {"prompt_token_cost": 0.01, "completion_token_cost": 0.02}
    out = agent(llm_server, model="house-model", custom_pricing=pricing).execute(messages=ask("x"))
    assert out["usage"]["cost"] == pytest.approx(0.01 + 0.01)


@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_unknown_price_is_none_not_zero(llm_server, provider):
    out = agent(llm_server, provider, model="no-such-model").execute(messages=ask("x"))
    assert out["usage"]["total_tokens"] > 0
    assert out["usage"]["cost"] is None


# -- sync, async, workflows ----------------------------------------------------------------


def test_async_execute(llm_server):
    node = agent(llm_server, tools=[add])
    out = asyncio.run(node.execute_async(messages=ask('{"a": 5, "b": 5}')))
    assert out["response"]["content"] == "The tool said: 10"


def test_async_tools_and_async_nodes(llm_server):
    async def slow_add(a: int, b: int) -> int:
        """Add, asynchronously."""
        await asyncio.sleep(0)
        return a + b

    node = agent(llm_server, tools=[slow_add])
    assert (
        asyncio.run(node.execute_async(messages=ask('{"a": 1, "b": 2}')))["tool_results"][0][
            "result"
        ]
        == "3"
    )
    assert node.execute(messages=ask('{"a": 1, "b": 3}'))["tool_results"][0]["result"] == "4"


def test_sync_execute_inside_a_running_loop(llm_server):
    """A Jupyter cell runs inside the kernel's event loop."""
    node = agent(llm_server, tools=[add])

    async def cell():
        return node.execute(messages=ask('{"a": 2, "b": 2}'))

    assert asyncio.run(cell())["response"]["content"] == "The tool said: 4"


@pytest.mark.parametrize("runtime", [LocalRuntime, AsyncLocalRuntime])
def test_in_a_workflow(llm_server, runtime):
    builder = WorkflowBuilder()
    builder.add_node(
        "LLMAgentNode",
        "agent",
        {
            "provider": "ollama",
            "model": "llama3.2",
            "base_url": llm_server.ollama_base_url,
            "tools": [add],
        },
    )
    builder.add_node("PythonCodeNode", "pick", {"code": "result = response['content'].upper()"})
    builder.add_connection("agent", "response", "pick", "response")
    workflow = builder.build()
    assert llm_server.requests == []
    parameters = {"agent": {"messages": ask('{"a": 20, "b": 22}')}}
    if runtime is LocalRuntime:
        results, _ = runtime().execute(workflow, parameters)
    else:
        results, _ = asyncio.run(runtime().execute_async(workflow, parameters))
    assert results["pick"]["result"] == "THE TOOL SAID: 42"


# -- steps --------------------------------------------------------------------------------


def test_steps_are_reported_in_order(llm_server):
    steps = []
    with step_receiver(lambda step, detail: steps.append((step, detail))):
        agent(llm_server, tools=[add]).execute(messages=ask('{"a": 1, "b": 1}'))
    assert [step for step, _ in steps] == [
        "prompt_sent",
        "tool_call",
        "tool_result",
        "prompt_sent",
        "answer",
    ]
    assert steps[0][1] == {"round": 1, "provider": "openai", "model": "gpt-4o-mini", "messages": 1}
    assert steps[1][1]["tool"] == "add" and json.loads(steps[1][1]["arguments"]) == {"a": 1, "b": 1}
    assert steps[2][1] == {"tool": "add", "ok": True, "preview": "2"}
    assert steps[4][1]["content"] == "The tool said: 2" and steps[4][1]["finish_reason"] == "stop"
    assert steps[4][1]["usage"]["total_tokens"] > 0
    json.dumps(steps)  # JSON-safe


# -- build, config and secrets ------------------------------------------------------------


def test_import_and_build_contact_nothing(llm_server):
    code = (
        "import sys, kailash_nb.nodes.ai as ai; "
        "print('kailash_nb.nodes.ai.llm_agent' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    agent(llm_server, tools=[add], response_format=City)
    assert llm_server.requests == []


def test_unknown_provider_at_build_lists_the_known_ones():
    with pytest.raises(NodeConfigurationError, match=r"unknown LLM provider 'opnai'.*openai"):
        LLMAgentNode(provider="opnai", model="m")


def test_bad_tools_and_response_format_at_build():
    with pytest.raises(NodeConfigurationError, match=r"tools\[0\] is a int"):
        LLMAgentNode(provider="openai", model="m", tools=[3])
    with pytest.raises(NodeConfigurationError, match="response_format must be"):
        LLMAgentNode(provider="openai", model="m", response_format="json")
    with pytest.raises(NodeConfigurationError, match="provider_config keys"):
        LLMAgentNode(provider="openai", model="m", provider_config={"api_version": "1"})


def test_base_url_and_key_are_never_inputs(llm_server):
    node = agent(llm_server)
    for name in ("base_url", "api_key", "allow_private_network"):
        with pytest.raises(NodeValidationError, match=f"no input '{name}'"):
            node.execute(messages=ask("x"), **{name: "http://169.254.169.254"})


def test_no_messages_is_a_validation_error(llm_server):
    with pytest.raises(NodeValidationError, match="nothing to send"):
        agent(llm_server).execute()


def test_openai_loopback_refused_without_allow_private_network(llm_server):
    node = LLMAgentNode(
        provider="openai", model="m", base_url=llm_server.openai_base_url, api_key="k-123456"
    )
    with pytest.raises(ProviderError, match="loopback"):
        node.execute(messages=ask("x"))
    assert llm_server.requests == []


def test_ollama_loopback_only_when_the_author_chose_ollama(llm_server):
    """A caller switching the ``provider`` input to Ollama does not get Ollama's
    loopback allowance: only the workflow's author can point a node at this machine."""
    chosen = LLMAgentNode(provider="ollama", model="m", base_url=llm_server.ollama_base_url)
    assert chosen.execute(messages=ask("hi"))["success"]
    switched = LLMAgentNode(provider="openai", model="m", base_url=llm_server.ollama_base_url)
    before = len(llm_server.requests)
    with pytest.raises(ProviderError, match="loopback"):
        switched.execute(messages=ask("hi"), provider="ollama")
    assert len(llm_server.requests) == before


def test_the_key_never_leaks(llm_server):
    key = llm_server.api_key
    steps = []
    node = agent(llm_server, tools=[add])
    with step_receiver(lambda step, detail: steps.append(detail)):
        out = node.execute(messages=ask('{"a": 1}'))
    assert key not in json.dumps([out, steps, node.to_dict()], default=str)
    assert key not in repr(node)
    assert all(request.headers["authorization"] == "<redacted>" for request in llm_server.requests)
    wrong = LLMAgentNode(
        provider="openai",
        model="m",
        base_url=llm_server.openai_base_url,
        api_key="sk-a-wrong-key-to-hide",
        allow_private_network=True,
    )
    with pytest.raises(ProviderError) as caught:
        wrong.execute(messages=ask("x"))
    assert "sk-a-wrong-key-to-hide" not in str(caught.value)


def test_a_provider_failure_in_a_workflow_is_recorded_without_the_key(llm_server):
    llm_server.add(error(500, "upstream broke"), error(500, "upstream broke"))
    builder = WorkflowBuilder()
    config = {
        "provider": "openai",
        "model": "m",
        "base_url": llm_server.openai_base_url,
        "api_key": llm_server.api_key,
        "allow_private_network": True,
        "max_retries": 1,
        "provider_config": {"backoff_factor": 0},
    }
    builder.add_node("LLMAgentNode", "agent", config)
    results, _ = LocalRuntime().execute(builder.build(), {"agent": {"messages": ask("x")}})
    assert results["agent"]["failed"] is True
    assert "HTTP 500" in results["agent"]["error"]
    assert llm_server.api_key not in json.dumps(results, default=str)


def test_a_reply_with_a_length_finish_reason_is_returned_as_is(llm_server):
    llm_server.add(Reply(content="truncat", finish_reason="length"))
    out = agent(llm_server).execute(messages=ask("x"))
    assert out["response"]["finish_reason"] == "length"


def test_async_run_leaves_the_loop_free_while_a_sync_tool_runs(llm_server):
    """A sync tool runs in a worker thread: it waits for a signal that only another
    coroutine on the event loop can give, after the tool started."""
    started, released = threading.Event(), threading.Event()

    def wait_for_release(label: str) -> str:
        """Wait until released."""
        started.set()
        return "released" if released.wait(timeout=2) else "the loop was blocked"

    llm_server.add(tool_call("wait_for_release", {"label": "x"}))

    async def release_once_started():
        while not started.is_set():
            await asyncio.sleep(0.005)
        released.set()

    async def main():
        node = agent(llm_server, tools=[wait_for_release])
        out, _ = await asyncio.gather(node.execute_async(messages=ask("x")), release_once_started())
        return out

    out = asyncio.run(main())
    assert out["tool_results"][0]["result"] == "released"


def test_close_and_aclose_then_run_again(llm_server):
    node = agent(llm_server)
    node.execute(messages=ask("one"))
    node.close()
    assert node.execute(messages=ask("two"))["response"]["content"] == "You said: two"

    async def twice():
        first = await node.execute_async(messages=ask("three"))
        await node.aclose()
        second = await node.execute_async(messages=ask("four"))
        await node.aclose()
        return first, second

    first, second = asyncio.run(twice())
    assert first["response"]["content"] == "You said: three"
    assert second["response"]["content"] == "You said: four"
