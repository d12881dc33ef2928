"""A fire that the agent's instance quota refuses is not dropped silently: the schedule
counts it and keeps the reason and when, and `agentflow schedules list` (human and
--json) and the MCP schedule tools show them, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agentflow import AgentFlow, Quotas
from agentflow.testing import ManualClock
from mcp_server import ServerConfig, build_server
from tests.mcp_server.conftest import connect, structured, text

WAITS = '''
async def run(event, step):
    await step.wait_for_event("go", type="go", timeout="1 day")
    return event.payload
'''

START = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/skipped.db"
    return str(request.getfixturevalue("postgres_url"))


async def _fire_past_the_quota(url: str) -> None:
    """Five fires of an every-minute schedule come due at once; the agent may have two
    active instances: three fires are refused."""
    clock = ManualClock(start=START)
    async with AgentFlow(url, isolation="inline", clock=clock, run_scheduler=False,
                         quotas=Quotas(agent_active_instances=2)) as flow:
        agent = flow.agent("a1")
        await agent.submit_plan("w", WAITS)
        await agent.schedules.create("w", every=60, overlap="allow", catchup="all")
        fresh = await agent.schedules.get("w")
        assert (fresh.skipped_fires, fresh.last_error, fresh.last_error_at) == (0, None, None)
        clock.advance(60 * 5 + 1)
        await flow.engine.schedules.fire_due()
        assert len(await agent.instances()) == 2
        s = await agent.schedules.get("w")
        assert s.skipped_fires == 3, s
        assert s.last_error is not None and s.last_error.startswith("LimitExceededError: ")
        assert "active instances" in s.last_error or "agent_active_instances" in (
            s.last_error), s.last_error
        assert s.last_error_at is not None and s.last_error_at.timestamp() == clock.now()
        assert s.next_fire_at is not None  # it goes on to its next fire
        # A later refused fire adds to the count.
        clock.advance(60)
        await flow.engine.schedules.fire_due()
        assert (await agent.schedules.get("w")).skipped_fires == 4


async def test_a_refused_fire_is_counted_with_its_reason(url: str) -> None:
    await _fire_past_the_quota(url)
    async with AgentFlow(url, isolation="inline", run_scheduler=False) as flow:
        agent = flow.agent("a1")
        assert (await agent.schedules.get("w")).skipped_fires == 4
        await agent.schedules.create("w", every=60, replace=True)  # a new schedule
        s = await agent.schedules.get("w")
        assert (s.skipped_fires, s.last_error, s.last_error_at) == (0, None, None)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentflow.cli", *args],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "250"})


async def test_schedules_list_and_the_mcp_tools_show_skipped_fires(tmp_path: object
                                                                   ) -> None:
    url = f"sqlite:///{tmp_path}/listed.db"
    await _fire_past_the_quota(url)
    listed = _cli("schedules", "--db", url, "--json")
    assert listed.returncode == 0, listed.stderr
    [w] = [s for s in json.loads(listed.stdout) if s["name"] == "w"]
    assert w["skipped_fires"] == 4 and w["last_error"].startswith("LimitExceededError")
    assert w["last_error_at"] is not None
    shown = _cli("schedules", "--db", url)
    assert shown.returncode == 0, shown.stderr
    [line] = [x for x in shown.stdout.splitlines() if x.startswith("schedule 'w'")]
    assert "of agent 'a1': 4 fires skipped; the last at " in line
    assert "LimitExceededError" in line, line

    async with AgentFlow(url, isolation="inline", run_scheduler=False) as flow:
        server = build_server(flow, ServerConfig(agent_id="a1"))
        async with connect(server) as c:
            result = await c.call_tool("list_schedules", {})
    [info] = [s for s in structured(result)["schedules"] if s["name"] == "w"]
    assert info["skipped_fires"] == 4 and info["last_error"].startswith("LimitExceededError")
    assert "4 fires could not start, the last because LimitExceededError" in text(result)
