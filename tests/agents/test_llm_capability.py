"""``env.llm`` through the real openai and anthropic clients, served canned replies by
an httpx2.MockTransport; the key stays on the host."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import openai

from agentflow import AgentFlow
from agentflow.capabilities import LLMCapability

KEY = "sk-live-NEVER-IN-PLANS"
CHAT = {"id": "c1", "object": "chat.completion", "created": 1700000000, "model": "gpt-test",
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": "a short summary",
                                 "refusal": None}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}
MESSAGE = {"id": "m1", "type": "message", "role": "assistant", "model": "claude-test",
           "content": [{"type": "text", "text": "a short summary"}], "stop_reason": "end_turn",
           "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 3}}
PLAN = '''
async def run(event, step):
    return await step.do("summarize", lambda: env.llm.complete("Summarize: " + event.payload,
                                                               max_tokens=50))
'''


def recorder(reply: dict[str, Any], seen: list[dict[str, Any]]) -> httpx2.MockTransport:
    def handle(request: httpx2.Request) -> httpx2.Response:
        seen.append({"path": request.url.path, "body": json.loads(request.content),
                     "auth": request.headers.get("authorization", "")
                     + request.headers.get("x-api-key", "")})
        return httpx2.Response(200, json=reply)
    return httpx2.MockTransport(handle)


async def run_plan(af: AgentFlow, capability: LLMCapability) -> tuple[Any, str]:
    agent = af.agent("writer", capabilities={"llm": capability})
    await agent.submit_plan("summary", PLAN)
    inst = await agent.start("summary", params="the release notes")
    status = await inst.wait(timeout=10)
    trail = json.dumps([status.model_dump(mode="json"),
                        [h.model_dump(mode="json") for h in await inst.history()]])
    return status.output, trail


async def test_openai_sync_client(af: AgentFlow) -> None:
    seen: list[dict[str, Any]] = []
    client = openai.OpenAI(api_key=KEY, base_url="https://api.test/v1", max_retries=0,
                           http_client=httpx2.Client(transport=recorder(CHAT, seen)))
    output, trail = await run_plan(af, LLMCapability(client, "gpt-test", max_tokens=20))
    assert output == "a short summary"
    assert seen[0]["path"] == "/v1/chat/completions"
    assert seen[0]["body"]["messages"] == [{"role": "user",
                                            "content": "Summarize: the release notes"}]
    assert seen[0]["body"]["max_tokens"] == 20  # the host's cap wins over the plan's 50
    assert KEY in seen[0]["auth"]
    assert KEY not in trail


async def test_anthropic_async_client(af: AgentFlow) -> None:
    seen: list[dict[str, Any]] = []
    client = anthropic.AsyncAnthropic(
        api_key=KEY, base_url="https://api.test", max_retries=0,
        http_client=httpx2.AsyncClient(transport=recorder(MESSAGE, seen)))
    output, trail = await run_plan(af, LLMCapability(client, "claude-test"))
    assert output == "a short summary"
    assert seen[0]["path"] == "/v1/messages"
    assert seen[0]["body"]["max_tokens"] == 50
    assert KEY in seen[0]["auth"]
    assert KEY not in trail
