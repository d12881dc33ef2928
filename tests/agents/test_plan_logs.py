"""print() in plan code: kept per step call and per attempt, each line once (a replay
prints again, and its duplicates are dropped), capped in size, and shown by history,
get_instance and get_history (over the real MCP client)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agentflow.capabilities import Capability, CapabilityContext, KVCapability
from agentflow.plans import AgentFlow
from agentflow.testing import ManualClock
from mcp_server import ServerConfig, build_server
from tests.mcp_server.conftest import connect, structured

PLAN = '''
async def flaky():
    tries = await env.kv.get("tries", 0)
    await env.kv.set("tries", tries + 1)
    print(f"attempt {tries + 1}")
    if tries == 0:
        raise ConnectionError("mail server busy")
    return "sent"


async def run(event, step):
    print("before first")
    a = await step.do("first", lambda: 1)
    print("between", a)
    await step.sleep("nap", "1 hour")
    print("after nap")
    b = await step.do("send", flaky, retries={"limit": 2, "delay": "10 seconds"})
    print("end")
    return b
'''


@pytest.fixture(params=["inline", "process"])
async def flow(request: pytest.FixtureRequest) -> AsyncIterator[tuple[AgentFlow, ManualClock]]:
    clock = ManualClock(start=1_800_000_000.0)
    async with AgentFlow("memory://", clock=clock, isolation=request.param) as af:
        yield af, clock


async def run_to_end(af: AgentFlow, clock: ManualClock, source: str) -> Any:
    agent = af.agent("logger", capabilities={"kv": KVCapability()})
    await agent.submit_plan("p", source)
    inst = await agent.start("p")
    status = await inst.wait(timeout=60)
    while status.status == "waiting" and status.waiting_on is not None:
        clock.advance(status.waiting_on.until.timestamp() - clock.now() + 0.001)
        status = await inst.wait(timeout=60)
    return inst, status


async def test_prints_are_kept_once_per_step_and_attempt(
        flow: tuple[AgentFlow, ManualClock]) -> None:
    af, clock = flow
    inst, status = await run_to_end(af, clock, PLAN)
    assert status.status == "complete" and status.output == "sent"
    first, nap, send, tail = await inst.history()
    # The run replayed from the top three times; each line is in the journal once.
    assert first.logs == ["before first"] and first.attempt_history == []
    assert nap.logs == ["between 1"]
    assert send.logs == ["after nap"]
    assert [(a.attempt, a.error["message"] if a.error else None, a.logs)
            for a in send.attempt_history] == [(1, "mail server busy", ["attempt 1"]),
                                               (2, None, ["attempt 2"])]
    assert (tail.kind, tail.logs) == ("log", ["end"])


async def test_a_flood_of_prints_is_capped(flow: tuple[AgentFlow, ManualClock]) -> None:
    af, clock = flow
    inst, status = await run_to_end(af, clock, '''
def shout():
    for i in range(5000):
        print("x" * 100, i)
    return 1


async def run(event, step):
    for i in range(3000):
        print("y" * 50)
    return await step.do("shout", shout)
''')
    assert status.status == "complete"
    (shout,) = await inst.history()
    for lines in (shout.logs, shout.attempt_history[0].logs):
        assert sum(map(len, lines)) <= 8_100 and len(lines) <= 201
        assert lines[-1].startswith("[log truncated")


async def test_get_instance_and_get_history_show_the_logs_and_attempts(
        flow: tuple[AgentFlow, ManualClock]) -> None:
    af, clock = flow
    af.agent("alice", capabilities={"kv": KVCapability()})
    async with connect(build_server(af, ServerConfig(agent_id="alice"))) as c:
        structured(await c.call_tool("submit_plan", {"name": "p", "source": PLAN}))
        started = structured(await c.call_tool("start_instance", {"plan": "p"}))
        instance_id = started["instance"]["id"]
        for _ in range(10):
            got = structured(await c.call_tool("wait_for_instance",
                                               {"instance_id": instance_id}))
            waiting = got["instance"]["waiting_on"]
            if got["instance"]["status"] != "waiting" or waiting is None:
                break
            clock.advance(3601)
        shown = structured(await c.call_tool("get_instance", {"instance_id": instance_id}))
        assert shown["instance"]["status"] == "complete"
        assert shown["logs"] == ["[before 'first'] before first", "[before 'nap'] between 1",
                                 "[before 'send'] after nap", "['send' attempt 1] attempt 1",
                                 "['send' attempt 2] attempt 2", "[after the last step] end"]
        (failed,) = shown["failed_attempts"]
        assert (failed["step"], failed["attempt"], failed["error"]["message"]) == (
            "send", 1, "mail server busy")
        assert "failed attempt" in shown["summary"]
        history = structured(await c.call_tool("get_history", {"instance_id": instance_id}))
        send = history["steps"][2]
        assert send["logs"] == ["after nap"]
        assert send["attempt_history"][0]["error"]["message"] == "mail server busy"
        assert "1 failed attempt" in history["summary"]


async def test_printing_cannot_go_past_the_journal_quota() -> None:
    """Logs count against Quotas.instance_journal_bytes and may fill half of it; past
    that they are dropped, and the steps still run (printing never fails a step)."""
    from agentflow import Quotas

    clock = ManualClock(start=1_800_000_000.0)
    async with AgentFlow("memory://", clock=clock, isolation="inline",
                         quotas=Quotas(instance_journal_bytes=40_000)) as af:
        inst, status = await run_to_end(af, clock, '''
def noisy(i):
    print("b" * 7000)
    return i


async def run(event, step):
    out = []
    for i in range(6):
        print("p" * 7000)
        out.append(await step.do(f"step {i}", lambda: noisy(i)))
    print("done")
    return out
''')
        assert status.status == "complete" and status.output == list(range(6))
        history = await inst.history()
        dropped = "[log dropped: the journal quota is full]"
        assert history[0].logs == ["p" * 7000]  # the first fit
        assert history[-2].logs == [dropped]  # the last step's: past the quota
        assert history[-2].attempt_history[0].logs == [dropped]
        kept = sum(len(line) for r in history for line in r.logs) + sum(
            len(line) for r in history for a in r.attempt_history for line in a.logs)
        assert kept <= 20_000


class HangingCapability(Capability):
    """A service that never answers: a step body awaiting it runs until its timeout."""

    name = "slow"
    methods = frozenset({"hang"})

    def __init__(self) -> None:
        self.entered = 0

    async def do_hang(self, ctx: CapabilityContext) -> None:
        """Never returns."""
        self.entered += 1
        await asyncio.Event().wait()


TIMES_OUT = '''
async def ask():
    print("asked the slow service")
    print("still waiting")
    return await env.slow.hang()


async def run(event, step):
    print("before the step")
    return await step.do("ask", ask, timeout="3 seconds", retries={"limit": 0})
'''


async def test_what_a_timed_out_attempt_printed_is_kept_with_it(
        flow: tuple[AgentFlow, ManualClock]) -> None:
    """The host cancels a body whose attempt timed out; the lines it printed before
    that stay with the attempt (they were lost with the cancelled body)."""
    af, _clock = flow
    slow = HangingCapability()
    agent = af.agent("waiter", capabilities={"slow": slow})
    await agent.submit_plan("p", TIMES_OUT)
    inst = await agent.start("p")
    status = await inst.wait(timeout=60)
    assert status.status == "errored", status
    assert status.error is not None and status.error["name"] == "WorkflowTimeoutError"
    assert slow.entered == 1
    [record] = [r for r in await inst.history() if r.name == "ask"]
    assert record.logs == ["before the step"]
    [attempt] = record.attempt_history
    assert attempt.error is not None and attempt.error["name"] == "WorkflowTimeoutError"
    assert attempt.logs == ["asked the slow service", "still waiting"]
