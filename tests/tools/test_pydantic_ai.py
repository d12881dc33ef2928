"""agentflow's tools as a pydantic-ai toolset, driven by pydantic-ai's own test models."""

from __future__ import annotations

import json
from typing import Any

from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from agentflow import AgentFlow
from agentflow.tools import TOOLS, load_prompt
from agentflow.tools.pydantic_ai import agentflow_toolset
from tests.tools.scripted import BAD_PLAN, FIXED_PLAN, PARAMS


def tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [part for m in messages if isinstance(m, ModelRequest) for part in m.parts
            if isinstance(part, ToolReturnPart)]


async def test_a_function_model_fixes_its_plan_from_the_diagnostics(af: AgentFlow) -> None:
    seen_tools: list[list[str]] = []
    seen_returns: list[ToolReturnPart] = []

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen_tools.append(sorted(t.name for t in info.function_tools))
        returns = tool_returns(messages)
        seen_returns[:] = returns
        if not returns:
            return ModelResponse(parts=[ToolCallPart("submit_plan",
                                                     {"name": "adder", "source": BAD_PLAN})])
        last = returns[-1]
        if last.tool_name == "submit_plan" and not last.content["ok"]:
            return ModelResponse(parts=[ToolCallPart("submit_plan",
                                                     {"name": "adder", "source": FIXED_PLAN})])
        if last.tool_name == "submit_plan":
            return ModelResponse(parts=[ToolCallPart("start_instance",
                                                     {"plan": "adder", "params": PARAMS})])
        return ModelResponse(parts=[TextPart(f"started {last.content['instance']['id']}")])

    agent = af.agent("writer")
    writer = PydanticAgent(FunctionModel(model), instructions=load_prompt("plan-authoring"),
                           toolsets=[agentflow_toolset(agent)])
    result = await writer.run("Add up the numbers 1, 2 and 3 in a durable plan.")

    assert seen_tools[0] == sorted(TOOLS)
    rejected, stored, started = (r.content for r in seen_returns)
    assert {"AF301", "AF201"} <= {d["code"] for d in rejected["diagnostics"]}
    assert stored["ok"] and stored["plan"]["name"] == "adder"
    instance_id = started["instance"]["id"]
    assert result.output == f"started {instance_id}"
    status = await agent.wait(instance_id, timeout=10)
    assert status.status == "complete" and status.output == {"total": 6}


async def test_the_test_model_calls_every_tool_and_failures_reach_it(af: AgentFlow) -> None:
    """pydantic-ai's TestModel calls every tool with arguments generated from our
    schemas; bad ids and invalid states come back as failed tool results, not crashes."""
    agent = af.agent("writer")
    writer = PydanticAgent(TestModel(), toolsets=[agentflow_toolset(agent)])
    result = await writer.run("try everything")
    returns = tool_returns(result.all_messages())
    assert {r.tool_name for r in returns} == set(TOOLS)
    failed = {r.tool_name for r in returns if r.outcome == "failed"}
    assert "get_instance" in failed  # a made-up id is "not found"
    assert all(r.outcome in ("success", "failed") for r in returns)
    text: Any = json.loads(result.output)  # TestModel sums up what the tools returned
    assert set(text) == set(TOOLS)
    assert await agent.instances() == []


async def test_approval_stays_with_people(af: AgentFlow) -> None:
    agent = af.agent("writer")
    await agent.submit_plan("p", '''async def run(event, step):
    return await step.wait_for_event("ok?", type="approval", timeout="1 day")
''')
    inst = await agent.start("p")
    await inst.wait(timeout=10)

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if not tool_returns(messages):
            return ModelResponse(parts=[
                ToolCallPart("send_event", {"instance_id": inst.id, "type": "Approval",
                                            "payload": {"approved": True}}),
                ToolCallPart("approve", {"instance_id": inst.id, "note": "looks fine"})])
        return ModelResponse(parts=[TextPart("tried")])

    writer = PydanticAgent(FunctionModel(model), toolsets=[agentflow_toolset(agent)])
    result = await writer.run("approve it yourself")
    send, approve = sorted(tool_returns(result.all_messages()), key=lambda r: r.tool_name)[::-1]
    assert send.tool_name == "send_event" and send.outcome == "failed"
    assert approve.tool_name == "approve" and approve.content["delivered"] is False
    assert approve.content["outcome"] == "pending_human"  # no person to ask: never fails open
    assert (await inst.status()).status == "waiting"
