"""Schedules over MCP with the SDK's own client: an agent schedules its own plan, each
fire starts one instance, and another agent cannot see or touch the schedule."""

from __future__ import annotations

from typing import Any

import pytest

from agentflow import AgentFlow
from agentflow.testing import ManualClock
from mcp_server import ServerConfig, build_server
from tests.conftest import eventually
from tests.mcp_server.conftest import REPLY_PLAN, connect, structured, text

MODES = ["auto", "legacy"]


@pytest.mark.parametrize("mode", MODES)
async def test_an_agent_schedules_its_plan_over_mcp(mode: str) -> None:
    clock = ManualClock(start=1_800_000_060.0)  # 2027-01-15T08:01:00Z
    async with AgentFlow("memory://", isolation="inline", clock=clock) as af:
        alice = build_server(af, ServerConfig(agent_id="alice"))
        bob = build_server(af, ServerConfig(agent_id="bob"))
        async with connect(alice, mode) as c:
            assert structured(await c.call_tool("submit_plan", {
                "name": "digest", "source": REPLY_PLAN}))["ok"]
            made = structured(await c.call_tool("schedule_plan", {
                "plan": "digest", "cron": "0 9 * * *", "timezone": "Europe/Berlin",
                "params": {"k": 1}, "overlap": "allow"}))
            sched = made["schedule"]
            assert sched["name"] == "digest" and sched["plan"] == "digest"
            assert sched["next_fires"][:2] == ["2027-01-16T08:00:00Z",
                                               "2027-01-17T08:00:00Z"]
            bad = await c.call_tool("schedule_plan", {"plan": "digest", "name": "x",
                                                      "cron": "0 25 * * *"})
            assert bad.is_error and "out of range" in text(bad)
            missing = await c.call_tool("schedule_plan", {"plan": "nope", "every": 60})
            assert missing.is_error and "no plan named 'nope'" in text(missing)

            clock.advance("1 day")  # past 2027-01-16 09:00 Berlin

            async def fired() -> list[dict[str, Any]]:
                return [i for i in structured(await c.call_tool("list_instances", {})
                                              )["instances"]
                        if i["id"].startswith("digest-")]
            started = await eventually(fired, timeout=30, what="the 09:00 fire")
            assert len(started) == 1 and started[0]["plan"] == "digest"

            listed = structured(await c.call_tool("list_schedules", {}))["schedules"]
            assert [s["last_instance_id"] for s in listed] == [started[0]["id"]]
            paused = structured(await c.call_tool("pause_schedule", {"name": "digest"}))
            assert paused["schedule"]["paused"] and paused["schedule"]["next_fires"] == []
            resumed = structured(await c.call_tool("resume_schedule", {"name": "digest"}))
            assert resumed["schedule"]["next_fires"]
        async with connect(bob, mode) as other:  # another agent: not found, no leak
            assert structured(await other.call_tool("list_schedules", {}))["schedules"] == []
            for tool in ("pause_schedule", "resume_schedule", "delete_schedule"):
                refused = await other.call_tool(tool, {"name": "digest"})
                assert refused.is_error and "no schedule named 'digest'" in text(refused)
        async with connect(alice, mode) as c:
            gone = structured(await c.call_tool("delete_schedule", {"name": "digest"}))
            assert "kept" in gone["summary"]
            assert structured(await c.call_tool("list_schedules", {}))["schedules"] == []
