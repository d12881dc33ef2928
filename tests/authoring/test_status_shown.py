"""What an instance's status says reaches every surface a person or model reads:
where in the run a plan error happened (before the first step, in the value `run`
returned), every wait a gathered run is parked on, and the status's note (a holder
that stopped renewing its claim). Checked through `agentflow show` (a real
subprocess, human and --json) and the MCP tools over the real client."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from agentflow import AgentFlow
from agentflow.plans import PLAN_WORKFLOW
from mcp_server import ServerConfig, build_server
from tests.agents.test_gathered_waits import TWO_APPROVERS
from tests.mcp_server.conftest import connect, structured, text

FIRST_LINE = '''
async def run(event, step):
    ratio = 1 / 0
    return await step.do("use", lambda: ratio)
'''

RETURNS_A_SET = '''
async def run(event, step):
    ids = await step.do("load", lambda: [1, 2, 2])
    return {"unique": set(ids)}
'''

LATER = '''
async def run(event, step):
    return await step.do("work", lambda: 42)
'''


async def _setup(url: str) -> None:
    async with AgentFlow(url, isolation="inline") as af:
        agent = af.agent("model")
        for name, source, iid in (("first", FIRST_LINE, "first-line"),
                                  ("ret", RETURNS_A_SET, "returned"),
                                  ("two", TWO_APPROVERS, "two-waits")):
            await agent.submit_plan(name, source)
            await (await agent.start(name, id=iid)).wait(timeout=60)
        await agent.submit_plan("later", LATER)
    async with AgentFlow(url, isolation="inline", run_scheduler=False) as af:
        await af.agent("model").start("later", id="orphan")
        # A holder that claimed it and then died: its lease ran out a second ago.
        [row] = await af.engine.store.claim_due_instances(
            owner="gone:1", workflows=[PLAN_WORKFLOW], now=af.engine.clock.now(),
            lease_now=time.time(), lease_until=time.time() - 1, limit=1)
        assert row.id == "orphan"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('shown') / 'shown.db'}"
    asyncio.run(_setup(url))
    return url


def show(db: str, instance_id: str, *extra: str) -> str:
    done = subprocess.run([sys.executable, "-m", "agentflow.cli", "show", instance_id,
                           "--db", db, *extra], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_show_says_an_error_came_before_the_first_step(db: str) -> None:
    shown = show(db, "first-line")
    assert "at: plan line 3, in run, before the first step: ratio = 1 / 0" in shown, shown
    error = json.loads(show(db, "first-line", "--json"))["status"]["error"]
    assert (error["step"], error["at"], error["where"]["line"]) == (
        None, "before the first step", 3), error


def test_show_says_an_error_was_in_the_value_run_returned(db: str) -> None:
    shown = show(db, "returned")
    assert "at: the return value of run, after step 'load'" in shown, shown
    error = json.loads(show(db, "returned", "--json"))["status"]["error"]
    assert (error["step"], error["after_step"], error["at"]) == (
        None, "load", "in the return value of run, after step 'load'"), error
    assert "where" not in error  # no plan line to point at


def test_show_lists_every_wait_of_a_gathered_run(db: str) -> None:
    shown = show(db, "two-waits")
    waits = [line for line in shown.splitlines() if line.startswith("waiting on: ")]
    assert len(waits) == 2, shown
    assert "'first approver'" in waits[0] and "'second approver'" in waits[1], waits
    status = json.loads(show(db, "two-waits", "--json"))["status"]
    assert [w["step"] for w in status["waits"]] == ["first approver", "second approver"]


def test_show_gives_the_status_note(db: str) -> None:
    shown = show(db, "orphan")
    [note] = [line for line in shown.splitlines() if line.startswith("note: ")]
    assert "gone:1" in note and "stopped renewing" in note, shown
    status = json.loads(show(db, "orphan", "--json"))["status"]
    assert status["status"] == "queued" and "stopped renewing" in status["note"]


async def _tool(db: str, name: str, args: dict[str, Any]) -> tuple[dict[str, Any], str]:
    async with AgentFlow(db, isolation="inline", run_scheduler=False) as af:
        server = build_server(af, ServerConfig(agent_id="model"))
        async with connect(server) as c:
            result = await c.call_tool(name, args)
            return structured(result), text(result)


@pytest.mark.parametrize("tool", ["get_instance", "get_history"])
async def test_the_tools_say_where_the_error_was(db: str, tool: str) -> None:
    got, summary = await _tool(db, tool, {"instance_id": "first-line"})
    error = got["instance"]["error"]
    assert (error["step"], error["at"]) == (None, "before the first step"), error
    assert "errored at line 3 in run (`ratio = 1 / 0`), before the first step" in summary
    got, summary = await _tool(db, tool, {"instance_id": "returned"})
    assert got["instance"]["error"]["at"] == "in the return value of run, after step 'load'"
    assert "errored, in the return value of run, after step 'load': plan error" in summary


async def test_get_instance_gives_every_wait_and_the_note(db: str) -> None:
    got, summary = await _tool(db, "get_instance", {"instance_id": "two-waits"})
    assert [w["step"] for w in got["instance"]["waits"]] == ["first approver",
                                                              "second approver"]
    assert got["instance"]["note"] is None
    assert "also waits on 1 more: event 'approval' at step 'second approver'" in summary
    got, summary = await _tool(db, "get_instance", {"instance_id": "orphan"})
    assert got["instance"]["status"] == "queued"
    assert "stopped renewing" in got["instance"]["note"]
    assert "Note: " in summary and "gone:1" in summary


async def test_the_notebook_timeline_says_where_the_error_was(db: str) -> None:
    from agentflow.notebook import Timeline

    async with AgentFlow(db, isolation="inline", run_scheduler=False) as af:
        agent = af.agent("model")
        notes = {}
        for iid in ("first-line", "returned"):
            inst = await agent.get(iid)
            notes[iid] = Timeline(await inst.history(), await inst.status()).notes()
    assert notes["first-line"][0] == (
        "error at plan line 3 in run, before the first step: ratio = 1 / 0")
    assert notes["returned"][0] == "error in the return value of run, after step 'load'"
