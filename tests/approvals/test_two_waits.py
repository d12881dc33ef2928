"""Two approval waits open at once (a plan that gathers two approvers): a person sees
both, chooses which one they answer, and each answer is consumed by exactly the wait
it was addressed to, from the Python operator API, the CLI and the MCP ``approve`` tool,
on SQLite and PostgreSQL. Nothing guesses: without a step, an ambiguous answer is
refused and nothing is sent."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from typing import Any

import pytest
from mcp import types

from agentflow.errors import InvalidStateError
from tests.approvals.conftest import AGENT, REPO, Setup, cli, mcp_client, person

TWO_APPROVERS = '''async def run(event, step):
    first, second = await gather(
        step.wait_for_event("first approver", type="approval", timeout="7 days"),
        step.wait_for_event("second approver", type="approval", timeout="7 days"))
    return {"first": first["payload"], "second": second["payload"]}
'''


async def two_waits(setup: Setup, iid: str) -> None:
    agent = setup.af.agent(AGENT)
    await agent.submit_plan("two", TWO_APPROVERS)
    inst = await agent.start("two", id=iid)
    status = await inst.wait(timeout=60)
    assert [w.step for w in status.waits] == ["first approver", "second approver"], status


async def answered(setup: Setup, iid: str) -> dict[str, str]:
    """Which wait consumed an event so far: step -> the comment it received."""
    history = await setup.af.agent(AGENT).history(iid)
    return {h.name: h.result["payload"]["comment"] for h in history
            if h.kind == "event" and h.status == "ok"}


def decision(comment: str, approved: bool = True) -> dict[str, Any]:
    return {"approved": approved, "comment": comment, "by": "human"}


async def test_the_python_operator_api_answers_the_wait_it_names(setup: Setup) -> None:
    await two_waits(setup, "py-2")
    agent = setup.af.agent(AGENT)
    # The second approver answers first: without addressing, the first wait took it.
    await agent.send_event("py-2", "approval", decision("grace"), step="second approver")
    assert (await agent.wait("py-2", timeout=60)).status == "waiting"
    assert await answered(setup, "py-2") == {"second approver": "grace"}
    [left] = (await agent.status("py-2")).waits
    assert left.step == "first approver"
    with pytest.raises(InvalidStateError, match="no open wait named 'second approver'"):
        await agent.send_event("py-2", "approval", decision("again"), step="second approver")
    await agent.send_event("py-2", "approval", decision("ada"), step="first approver")
    done = await agent.wait("py-2", timeout=60)
    assert done.output == {"first": decision("ada"), "second": decision("grace")}, done


async def test_the_cli_lists_both_waits_and_answers_the_one_chosen(setup: Setup) -> None:
    await two_waits(setup, "cli-2")
    refused = cli(setup, "approve", "cli-2", "--yes", "--comment", "guess")
    assert refused.returncode != 0, refused
    assert "waits for 2 'approval' decisions at once" in refused.stderr
    assert "--step \"first approver\"" in refused.stderr
    assert "--step \"second approver\"" in refused.stderr
    assert await setup.af.engine.store.pending_events("cli-2", "approval") == []

    unknown = cli(setup, "approve", "cli-2", "--yes", "--step", "third approver")
    assert unknown.returncode != 0 and "no open 'approval' waits" in unknown.stderr

    chosen = cli(setup, "approve", "cli-2", "--yes", "--step", "second approver",
                 "--comment", "grace", "--json")
    assert chosen.returncode == 0, chosen.stderr
    shown = json.loads(chosen.stdout)
    assert shown["request"]["step"] == "second approver"  # the record it showed
    assert (await setup.af.agent(AGENT).wait("cli-2", timeout=60)).status == "waiting"
    assert await answered(setup, "cli-2") == {"second approver": "grace"}

    # One open now: no --step needed, and it reaches the one left.
    last = cli(setup, "reject", "cli-2", "--yes", "--comment", "ada")
    assert last.returncode == 0, last.stderr
    done = await setup.af.agent(AGENT).wait("cli-2", timeout=60)
    assert done.output == {"first": decision("ada", approved=False),
                           "second": decision("grace")}, done


@pytest.mark.parametrize("front_end", ["mcp-stdio-2025-11-25", "mcp-http-2026-07-28"])
async def test_the_approve_tool_asks_about_the_wait_named_by_step(setup: Setup,
                                                                  front_end: str) -> None:
    await two_waits(setup, "mcp-2")
    _, transport, protocol = front_end.split("-", 2)
    seen: list[types.ElicitRequestParams] = []
    answer = person("accept", {"decision": "approve", "comment": "grace"}, seen=seen)
    async with mcp_client(setup, transport, protocol, answer) as client:
        ambiguous = await client.call_tool("approve", {"instance_id": "mcp-2"})
        assert ambiguous.is_error, ambiguous
        text = ambiguous.content[0].text  # type: ignore[union-attr]
        assert "waits for 2 approvals at once" in text
        assert "'first approver'" in text and "'second approver'" in text
        assert seen == []  # nobody was asked about a wait nobody chose

        result = await client.call_tool("approve", {"instance_id": "mcp-2",
                                                    "step": "second approver"})
    assert not result.is_error and result.structured_content is not None, result
    assert result.structured_content["outcome"] == "approved"
    assert result.structured_content["step"] == "second approver"
    [asked] = seen
    assert '"second approver"' in asked.message  # the dialog says which wait it is
    assert (await setup.af.agent(AGENT).wait("mcp-2", timeout=60)).status == "waiting"
    assert await answered(setup, "mcp-2") == {"second approver": "grace"}


def approve_at_a_terminal(url: str, typed: bytes) -> subprocess.CompletedProcess[str]:
    """``agentflow approve tty-2`` with a terminal as its stdin, on which a person has
    typed ``typed``."""
    primary, secondary = pty.openpty()
    try:
        os.write(primary, typed)
        return subprocess.run(
            [sys.executable, "-m", "agentflow.cli", "approve", "tty-2", "--comment", "grace",
             "--db", url], stdin=secondary, capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONWARNINGS": "ignore"}, cwd=str(REPO))
    finally:
        os.close(primary)
        os.close(secondary)


async def test_a_person_at_the_terminal_picks_the_wait_they_answer(setup: Setup) -> None:
    await two_waits(setup, "tty-2")
    proc = await asyncio.to_thread(approve_at_a_terminal, setup.url, b"2\napprove\n")
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 0, err
    assert "waits for 2 'approval' decisions at once" in out
    assert '1. step "first approver"' in out and '2. step "second approver"' in out
    assert 'step      "second approver"' in out  # the record of the one picked
    assert (await setup.af.agent(AGENT).wait("tty-2", timeout=60)).status == "waiting"
    assert await answered(setup, "tty-2") == {"second approver": "grace"}
