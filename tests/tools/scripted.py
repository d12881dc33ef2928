"""A scripted model behind the real openai and anthropic clients.

`ScriptedModel` is an ``httpx2.MockTransport`` handler that serves canned API replies
for Chat Completions, Responses and Messages. It reads the tool results the client sent
and decides its next move like a model that learns from the validator: first it submits
a plan with a banned import and an unawaited step, then, given the diagnostics, submits
the fixed plan, then starts it, then says it is done. Every request body is recorded.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import openai

BAD_PLAN = '''import math

async def run(event, step):
    step.do("announce", lambda: "adding")
    total = await step.do("add", lambda: sum(event.payload["numbers"]))
    return {"total": total}
'''

FIXED_PLAN = '''async def run(event, step):
    await step.do("announce", lambda: "adding")
    total = await step.do("add", lambda: sum(event.payload["numbers"]))
    return {"total": total}
'''

PARAMS = {"numbers": [1, 2, 3]}


class ScriptedModel:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    # -- the model's "mind": the next move, from the last tool result ---------------
    def next_move(self, last_result: str | None) -> tuple[str, dict[str, Any]] | str:
        if last_result is None:
            return "submit_plan", {"name": "adder", "source": BAD_PLAN}
        result = json.loads(last_result)
        if "diagnostics" in result and not result.get("ok"):
            return "submit_plan", {"name": "adder", "source": FIXED_PLAN}
        if result.get("plan") and result.get("ok"):
            return "start_instance", {"plan": "adder", "params": PARAMS}
        return f"Started instance {result['instance']['id']}."

    # -- the HTTP side ---------------------------------------------------------------
    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        self.requests.append({"path": request.url.path, "body": body})
        turn = len(self.requests)
        if request.url.path.endswith("/chat/completions"):
            last = body["messages"][-1]
            move = self.next_move(last["content"] if last["role"] == "tool" else None)
            return httpx2.Response(200, json=chat_reply(turn, move))
        if request.url.path.endswith("/responses"):
            last = body["input"][-1]
            move = self.next_move(last["output"] if last.get("type") == "function_call_output"
                                  else None)
            return httpx2.Response(200, json=responses_reply(turn, move))
        last = body["messages"][-1]
        content = last["content"]
        results = [b for b in content if b.get("type") == "tool_result"] \
            if isinstance(content, list) else []
        move = self.next_move(results[-1]["content"] if results else None)
        return httpx2.Response(200, json=messages_reply(turn, move))

    def bodies(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests]


def chat_reply(turn: int, move: tuple[str, dict[str, Any]] | str) -> dict[str, Any]:
    if isinstance(move, str):
        message = {"role": "assistant", "content": move, "refusal": None}
        finish = "stop"
    else:
        message = {"role": "assistant", "content": None, "refusal": None,
                   "tool_calls": [{"id": f"call_{turn}", "type": "function",
                                   "function": {"name": move[0],
                                                "arguments": json.dumps(move[1])}}]}
        finish = "tool_calls"
    return {"id": f"chatcmpl-{turn}", "object": "chat.completion", "created": 1700000000,
            "model": "gpt-test", "choices": [{"index": 0, "finish_reason": finish,
                                              "logprobs": None, "message": message}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def responses_reply(turn: int, move: tuple[str, dict[str, Any]] | str) -> dict[str, Any]:
    if isinstance(move, str):
        output = [{"type": "message", "id": f"msg_{turn}", "role": "assistant",
                   "status": "completed",
                   "content": [{"type": "output_text", "text": move, "annotations": []}]}]
    else:
        output = [{"type": "function_call", "id": f"fc_{turn}", "call_id": f"call_{turn}",
                   "name": move[0], "arguments": json.dumps(move[1]), "status": "completed"}]
    return {"id": f"resp_{turn}", "object": "response", "created_at": 1700000000,
            "model": "gpt-test", "status": "completed", "parallel_tool_calls": True,
            "tool_choice": "auto", "tools": [], "error": None, "incomplete_details": None,
            "output": output}


def messages_reply(turn: int, move: tuple[str, dict[str, Any]] | str) -> dict[str, Any]:
    if isinstance(move, str):
        content: list[dict[str, Any]] = [{"type": "text", "text": move}]
        stop = "end_turn"
    else:
        content = [{"type": "text", "text": "Let me do that."},
                   {"type": "tool_use", "id": f"toolu_{turn}", "name": move[0],
                    "input": move[1]}]
        stop = "tool_use"
    return {"id": f"msg_{turn}", "type": "message", "role": "assistant",
            "model": "claude-test", "content": content, "stop_reason": stop,
            "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5}}


def openai_client(model: ScriptedModel, *, use_async: bool) -> Any:
    if use_async:
        return openai.AsyncOpenAI(api_key="sk-test", base_url="https://api.test/v1",
                                  max_retries=0,
                                  http_client=httpx2.AsyncClient(
                                      transport=httpx2.MockTransport(model)))
    return openai.OpenAI(api_key="sk-test", base_url="https://api.test/v1", max_retries=0,
                         http_client=httpx2.Client(transport=httpx2.MockTransport(model)))


def anthropic_client(model: ScriptedModel, *, use_async: bool) -> Any:
    if use_async:
        return anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url="https://api.test",
                                        max_retries=0,
                                        http_client=httpx2.AsyncClient(
                                            transport=httpx2.MockTransport(model)))
    return anthropic.Anthropic(api_key="sk-ant-test", base_url="https://api.test",
                               max_retries=0,
                               http_client=httpx2.Client(transport=httpx2.MockTransport(model)))
