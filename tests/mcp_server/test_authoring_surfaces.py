"""What a model reads to fix its plan, over the real MCP client: its grants (a tool and
a resource), grant-aware validation, an errored instance's plan line and step in
get_instance and the debug_instance prompt, and list_pending_events in good grammar."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentflow import AgentFlow
from agentflow.capabilities import KVCapability
from mcp_server import ServerConfig, build_server
from tests.mcp_server.conftest import REPLY_PLAN, connect, structured, text

FAILING = '''
def parse(text):
    return int(text)


async def run(event, step):
    raw = await step.do("fetch", lambda: "12x")
    return parse(raw)
'''


@pytest.fixture
async def granted() -> AsyncIterator[Any]:
    async with AgentFlow("memory://", isolation="inline") as af:
        af.agent("alice", capabilities={"kv": KVCapability()})
        yield build_server(af, ServerConfig(agent_id="alice"))


async def test_a_model_can_read_its_grants(granted: Any) -> None:
    async with connect(granted) as c:
        described = structured(await c.call_tool("describe_capabilities", {}))
        (kv,) = described["capabilities"]
        assert kv["name"] == "kv" and kv["methods"] == ["delete", "get", "list", "set"]
        assert kv["calls"]["get"]["call"] == "env.kv.get(key, default=None)"
        assert kv["calls"]["get"]["does"]
        assert "env.kv: " in described["summary"]
        resource = (await c.read_resource("agentflow://capabilities")).contents[0]
        assert json.loads(resource.text)["capabilities"] == described["capabilities"]  # type: ignore[union-attr]
        checked = structured(await c.call_tool("validate_plan", {"source": (
            'async def run(event, step):\n'
            '    return await step.do("x", lambda: env.http.get_json("u"))\n')}))
        assert not checked["ok"]
        (finding,) = checked["diagnostics"]
        assert finding["code"] == "AF409" and "granted: kv" in finding["message"]


async def test_no_grants_says_env_is_empty() -> None:
    async with AgentFlow("memory://", isolation="inline") as af:
        server = build_server(af, ServerConfig(agent_id="bob"))
        async with connect(server) as c:
            described = structured(await c.call_tool("describe_capabilities", {}))
        assert described["capabilities"] == []
        assert "No capability is granted" in described["summary"]


async def test_an_errored_instance_names_its_plan_line_and_step(granted: Any) -> None:
    async with connect(granted) as c:
        structured(await c.call_tool("submit_plan", {"name": "p", "source": FAILING}))
        structured(await c.call_tool("start_instance", {"plan": "p", "id": "bad"}))
        done = structured(await c.call_tool("wait_for_instance", {"instance_id": "bad"}))
        assert done["instance"]["status"] == "errored"
        shown = await c.call_tool("get_instance", {"instance_id": "bad"})
        error = structured(shown)["instance"]["error"]
        assert error["where"]["line"] == 3 and error["where"]["function"] == "parse"
        assert error["where"]["source"] == "return int(text)"
        assert error["after_step"] == "fetch"
        assert ("errored at line 3 in parse (`return int(text)`), after step 'fetch': "
                "plan error ValueError") in text(shown)  # the plan's own error, so marked
        debug = await c.get_prompt("debug_instance", {"instance_id": "bad"})
        body = debug.messages[0].content.text  # type: ignore[union-attr]
        assert '"where"' in body and "return int(text)" in body


async def test_pending_events_summary_grammar(granted: Any) -> None:
    async with connect(granted) as c:
        structured(await c.call_tool("submit_plan", {"name": "r", "source": REPLY_PLAN}))
        for n, instance_id in enumerate(("w1", "w2"), 1):
            structured(await c.call_tool("start_instance", {"plan": "r", "id": instance_id}))
            structured(await c.call_tool("wait_for_instance", {"instance_id": instance_id}))
            summary = structured(await c.call_tool("list_pending_events", {}))["summary"]
            assert summary.startswith(
                "1 instance waits for an event" if n == 1 else "2 instances wait for an event")
