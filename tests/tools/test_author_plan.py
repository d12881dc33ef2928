"""The authoring loop with the real openai and anthropic clients and a scripted model:
a plan with a banned import and an unawaited step is rejected with diagnostics, fixed,
submitted and started; the requests carry the tool schemas and the tool results."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest

from agentflow import AgentFlow, SyncAgentFlow
from agentflow.tools import AUTHORING_TOOLS, TOOLS, author_plan, author_plan_async, load_prompt
from agentflow.tools.anthropic import messages_tools
from agentflow.tools.openai import chat_completions_tools, responses_tools
from tests.tools.scripted import (
    FIXED_PLAN,
    PARAMS,
    ScriptedModel,
    anthropic_client,
    openai_client,
)

APIS = ["chat", "responses", "messages"]


def client_for(api: str, model: ScriptedModel, *, use_async: bool) -> Any:
    if api == "messages":
        return anthropic_client(model, use_async=use_async)
    return openai_client(model, use_async=use_async)


def tool_results(api: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool results a request carries, as ``{"id", "content", "is_error"}``."""
    if api == "chat":
        return [{"id": m["tool_call_id"], "content": m["content"], "is_error": None}
                for m in body["messages"] if m["role"] == "tool"]
    if api == "responses":
        return [{"id": i["call_id"], "content": i["output"], "is_error": None}
                for i in body["input"] if i.get("type") == "function_call_output"]
    return [{"id": b["tool_use_id"], "content": b["content"], "is_error": b["is_error"]}
            for m in body["messages"] if m["role"] == "user" and isinstance(m["content"], list)
            for b in m["content"] if b["type"] == "tool_result"]


def expected_tools(api: str) -> list[dict[str, Any]]:
    return {"chat": chat_completions_tools, "responses": responses_tools,
            "messages": messages_tools}[api](AUTHORING_TOOLS)


def system_prompt(api: str, body: dict[str, Any]) -> str:
    if api == "chat":
        assert body["messages"][0]["role"] == "system"
        return str(body["messages"][0]["content"])
    return str(body["instructions"] if api == "responses" else body["system"])


def check_conversation(api: str, model: ScriptedModel, result: Any) -> None:
    bodies = model.bodies()
    assert len(bodies) == 4
    guide = load_prompt("plan-authoring")
    for body in bodies:
        assert body["model"] in ("gpt-test", "claude-test")
        assert body["tools"] == expected_tools(api)
        assert guide in system_prompt(api, body)
    # The tool schema is the pydantic model's, as the MCP server publishes it.
    submit = next(t for t in bodies[0]["tools"]
                  if (t.get("function", t)).get("name") == "submit_plan")
    schema = submit.get("function", submit).get("parameters") or submit.get("input_schema")
    expected = TOOLS["submit_plan"].args_model.model_json_schema()
    expected.pop("title")
    assert schema == expected
    assert tool_results(api, bodies[0]) == []

    # Turn 2 carries the diagnostics of the bad plan: both problems, with codes and fixes.
    first = tool_results(api, bodies[1])
    assert len(first) == 1 and first[0]["is_error"] in (None, False)
    rejected = json.loads(first[0]["content"])
    assert rejected["ok"] is False
    codes = {d["code"] for d in rejected["diagnostics"]}
    assert {"AF301", "AF201"} <= codes
    assert all(d["hint"] and d["line"] >= 1 for d in rejected["diagnostics"])

    # Turn 3: the fixed plan was stored; turn 4: the instance was started.
    second = json.loads(tool_results(api, bodies[2])[-1]["content"])
    assert second["ok"] is True and second["plan"]["name"] == "adder"
    started = json.loads(tool_results(api, bodies[3])[-1]["content"])
    assert started["instance"]["id"] == result.instance_id
    # Each result answers the call it belongs to.
    ids = [r["id"] for r in tool_results(api, bodies[3])]
    assert len(ids) == 3 and len(set(ids)) == 3

    assert result.ok, result.reason
    assert result.turns == 4
    assert result.plan == "adder"
    assert {"AF301", "AF201"} <= set(result.diagnostics[0])
    assert [c.tool for c in result.calls] == ["submit_plan", "submit_plan", "start_instance"]
    assert result.final_text == f"Started instance {result.instance_id}."


@pytest.fixture
def threaded_flow() -> Iterator[SyncAgentFlow]:
    with AgentFlow("memory://").in_thread() as flow:
        yield flow


@pytest.mark.parametrize("api", APIS)
async def test_author_plan_async(api: str) -> None:
    async with AgentFlow("memory://", isolation="inline") as af:
        agent = af.agent("author")
        model = ScriptedModel()
        client = client_for(api, model, use_async=True)
        result = await author_plan_async(client, f"{'claude' if api == 'messages' else 'gpt'}"
                                         "-test", agent, "add up the numbers",
                                         api=api if api != "messages" else None,
                                         plan_name="adder", params=PARAMS)
        check_conversation(api, model, result)
        assert await agent.plan_source("adder") == FIXED_PLAN
        status = await agent.wait(result.instance_id, timeout=10)
        assert status.status == "complete" and status.output == {"total": 6}


@pytest.mark.parametrize("api", APIS)
def test_author_plan_sync(api: str, threaded_flow: SyncAgentFlow) -> None:
    """Sync clients, with the AgentFlow (confined workers) on a background thread."""
    agent = threaded_flow.agent("author")
    model = ScriptedModel()
    client = client_for(api, model, use_async=False)
    result = author_plan(client, "claude-test" if api == "messages" else "gpt-test", agent,
                         "add up the numbers", api=api if api != "messages" else None)
    check_conversation(api, model, result)
    assert result.instance_id is not None
    status = agent.wait(result.instance_id, timeout=20)  # the sync facade: no await
    assert status.status == "complete" and status.output == {"total": 6}


def test_author_plan_stops_after_max_turns(threaded_flow: SyncAgentFlow) -> None:
    model = ScriptedModel()
    result = author_plan(client_for("chat", model, use_async=False), "gpt-test",
                         threaded_flow.agent("author"), "add up the numbers", max_turns=2)
    assert not result.ok
    assert result.turns == 2 and len(model.requests) == 2
    assert "max_turns=2" in result.reason
    assert result.plan == "adder" and result.instance_id is None


async def test_sync_and_async_clients_are_not_mixed_up() -> None:
    from agentflow.errors import UsageError

    async with AgentFlow("memory://", isolation="inline") as af:
        agent = af.agent("author")
        sync_client = client_for("chat", ScriptedModel(), use_async=False)
        with pytest.raises(UsageError, match="author_plan with a sync one"):
            await author_plan_async(sync_client, "gpt-test", agent, "goal")
        # A sync call on the AgentFlow's own loop would deadlock: refused with a hint.
        with pytest.raises(UsageError, match="async variant"):
            author_plan(sync_client, "gpt-test", agent, "goal")
        with pytest.raises(UsageError, match="OpenAI or Anthropic client"):
            await author_plan_async(object(), "gpt-test", agent, "goal")


class StartsAnotherPlan(ScriptedModel):
    """Submits "adder" like the scripted model, then starts a plan the agent already had."""

    def next_move(self, last_result: str | None) -> tuple[str, dict[str, Any]] | str:
        move = super().next_move(last_result)
        if isinstance(move, tuple) and move[0] == "start_instance":
            return "start_instance", {"plan": "older"}
        return move


async def test_ok_only_when_the_started_instance_runs_the_submitted_plan() -> None:
    async with AgentFlow("memory://", isolation="inline") as af:
        agent = af.agent("author")
        await agent.submit_plan("older", "async def run(event, step):\n    return 1\n")
        model = StartsAnotherPlan()
        result = await author_plan_async(client_for("chat", model, use_async=True),
                                         "gpt-test", agent, "add up the numbers")
        assert result.plan == "adder" and result.instance_id is not None
        assert result.started is not None and result.started[0] == "older"
        assert not result.ok
        assert "without starting an instance of a valid plan" in result.reason


async def test_a_subclassed_sdk_client_is_recognised() -> None:
    class MyClient(openai.AsyncOpenAI):
        pass

    async with AgentFlow("memory://", isolation="inline") as af:
        model = ScriptedModel()
        client = MyClient(api_key="sk-test", base_url="https://api.test/v1", max_retries=0,
                          http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(model)))
        result = await author_plan_async(client, "gpt-test", af.agent("author"),
                                         "add up the numbers")
        assert result.ok, result.reason


async def test_misuse_is_refused_before_any_model_request() -> None:
    from agentflow.errors import UsageError

    model = ScriptedModel()
    af = AgentFlow("memory://", isolation="inline")  # not started
    with pytest.raises(UsageError, match="not started"):
        await author_plan_async(client_for("chat", model, use_async=True), "gpt-test",
                                af.agent("author"), "goal")
    with pytest.raises(UsageError, match="not running"):
        author_plan(client_for("chat", model, use_async=False), "gpt-test",
                    af.agent("author"), "goal")
    async with af:
        for turns in (0, -1, 1.5):
            with pytest.raises(UsageError, match="max_turns"):
                await author_plan_async(client_for("chat", model, use_async=True),
                                        "gpt-test", af.agent("author"), "goal",
                                        max_turns=turns)  # type: ignore[arg-type]
    assert model.requests == []  # nothing was paid for
