"""The OpenAI and Anthropic tool adapters: definitions from the shared models, results in
each API's own shape, errors as tool results, the human-only rule, the lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from agentflow import AgentFlow
from agentflow.errors import UsageError
from agentflow.tools import TOOLS
from agentflow.tools.anthropic import AnthropicTools, messages_tools
from agentflow.tools.anthropic import assistant_message as anthropic_assistant
from agentflow.tools.openai import (
    OpenAITools,
    assistant_message,
    chat_completions_tools,
    responses_tools,
)
from tests.tools.scripted import FIXED_PLAN, chat_reply, messages_reply, responses_reply


def test_definitions_cover_every_tool_with_the_shared_schemas() -> None:
    chat, responses, messages = chat_completions_tools(), responses_tools(), messages_tools()
    assert [t["function"]["name"] for t in chat] == list(TOOLS)
    assert [t["name"] for t in responses] == list(TOOLS)
    assert [t["name"] for t in messages] == list(TOOLS)
    for c, r, m in zip(chat, responses, messages, strict=True):
        spec = TOOLS[m["name"]]
        schema = spec.args_model.model_json_schema()
        schema.pop("title")
        assert c["type"] == "function" and r["type"] == "function"
        assert c["function"]["parameters"] == r["parameters"] == m["input_schema"] == schema
        assert c["function"]["description"] == r["description"] == m["description"] \
            == spec.description
        assert schema["additionalProperties"] is False  # unknown arguments are errors
    with pytest.raises(ValueError, match="unknown tools"):
        chat_completions_tools(["no_such_tool"])


def test_the_real_clients_accept_the_definitions() -> None:
    """The SDKs serialize our definitions as they are (no client-side rejection)."""
    seen: list[dict[str, Any]] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        path = request.url.path
        reply = (chat_reply(1, "hi") if path.endswith("/chat/completions") else
                 responses_reply(1, "hi") if path.endswith("/responses") else
                 messages_reply(1, "hi"))
        return httpx2.Response(200, json=reply)

    oa = openai.OpenAI(api_key="k", base_url="https://api.test/v1", max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.MockTransport(handle)))
    oa.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                               tools=chat_completions_tools())  # type: ignore[arg-type]
    oa.responses.create(model="m", input="x", tools=responses_tools())  # type: ignore[arg-type]
    an = anthropic.Anthropic(api_key="k", base_url="https://api.test", max_retries=0,
                             http_client=httpx2.Client(transport=httpx2.MockTransport(handle)))
    an.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}],
                       tools=messages_tools())  # type: ignore[arg-type]
    assert seen[0]["tools"] == chat_completions_tools()
    assert seen[1]["tools"] == responses_tools()
    assert seen[2]["tools"] == messages_tools()


async def test_openai_handlers_answer_in_each_apis_shape(af: AgentFlow) -> None:
    agent = af.agent("a")
    tools = OpenAITools(agent)
    # Chat Completions, from the SDK's own parsed object.
    reply = openai.types.chat.ChatCompletion.model_validate(
        chat_reply(1, ("submit_plan", {"name": "p", "source": FIXED_PLAN})))
    message = reply.choices[0].message
    [answer] = await tools.chat_results(message)
    assert answer["role"] == "tool" and answer["tool_call_id"] == "call_1"
    assert json.loads(answer["content"])["ok"] is True
    assert assistant_message(message)["tool_calls"][0]["function"]["name"] == "submit_plan"
    # Responses, from a plain dict: an unknown instance is an error result, not a raise.
    items = await tools.responses_results(responses_reply(
        2, ("get_instance", {"instance_id": "nope"})))
    assert items == [{"type": "function_call_output", "call_id": "call_2",
                      "output": items[0]["output"]}]
    assert items[0]["output"].startswith("Error: ") and "nope" in items[0]["output"]
    # Malformed JSON arguments are an error result too.
    bad = {"tool_calls": [{"id": "c", "function": {"name": "start_instance",
                                                  "arguments": "{not json"}}]}
    [answer] = await tools.chat_results(bad)
    assert answer["content"].startswith("Error: the arguments of start_instance are not valid")


async def test_anthropic_handler_marks_errors_and_keeps_the_human_only_rule(
        af: AgentFlow) -> None:
    agent = af.agent("a")
    await agent.submit_plan("p", '''async def run(event, step):
    return await step.wait_for_event("ok?", type="approval", timeout="1 day")
''')
    inst = await agent.start("p")
    await inst.wait(timeout=10)
    tools = AnthropicTools(agent, tools=["send_event", "get_instance"])
    reply = anthropic.types.Message.model_validate(messages_reply(
        1, ("send_event", {"instance_id": inst.id, "type": "approval",
                           "payload": {"approved": True}})))
    result = await tools.tool_results(reply)
    assert result is not None and result["role"] == "user"
    [block] = result["content"]
    assert block["type"] == "tool_result" and block["tool_use_id"] == "toolu_1"
    assert block["is_error"] is True and "approve" in block["content"]
    assert (await inst.status()).status == "waiting"  # nothing was sent
    # A tool not offered is refused the same way.
    result = await tools.tool_results(messages_reply(2, ("terminate_instance",
                                                         {"instance_id": inst.id})))
    assert result is not None and result["content"][0]["is_error"] is True
    assert (await inst.status()).status == "waiting"
    ok = await tools.tool_results(messages_reply(3, ("get_instance", {"instance_id": inst.id})))
    assert ok is not None and ok["content"][0]["is_error"] is False
    assert json.loads(ok["content"][0]["content"])["instance"]["status"] == "waiting"
    assert await tools.tool_results(messages_reply(4, "done")) is None
    assert anthropic_assistant(reply)["content"][1]["type"] == "tool_use"


async def test_sync_handlers_refuse_to_block_their_own_loop(af: AgentFlow) -> None:
    tools = OpenAITools(af.agent("a"))
    with pytest.raises(UsageError, match="async variant"):
        tools.chat_results_sync(chat_reply(1, ("list_plans", {}))["choices"][0]["message"])


def test_sync_handlers_need_a_running_flow() -> None:
    flow = AgentFlow("memory://")
    with pytest.raises(UsageError, match="in_thread"):
        AnthropicTools(flow.agent("a")).tool_results_sync(messages_reply(1, ("list_plans", {})))
    with flow.in_thread() as running:
        result = AnthropicTools(running.agent("a")).tool_results_sync(
            messages_reply(1, ("list_plans", {})))
        assert result is not None
        assert json.loads(result["content"][0]["content"])["plans"] == []


def test_importing_the_adapters_loads_no_sdk() -> None:
    code = ("import agentflow.tools, agentflow.tools.openai, agentflow.tools.anthropic, sys, "
            "json; print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    loaded = set(json.loads(out.stdout))
    for banned in ("openai", "anthropic", "mcp", "pydantic_ai"):
        assert banned not in loaded, banned
