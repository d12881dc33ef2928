"""A step's timeout, terminate and restart end a step body that runs in the worker, even
a synchronous one that never yields; pause lets the current step finish. Real confined
workers, real clock, real /proc readings; every wait has a generous deadline."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentflow import AgentFlow
from agentflow.capabilities import Capability, CapabilityContext
from sandbox import Limits
from tests.conftest import eventually

SPIN = '''
async def run(event, step):
    def spin():
        n = 0
        while True:
            n += 1
    try:
        await step.do("spin", spin, timeout="1 second", retries={"limit": 1, "delay": 0})
    except WorkflowTimeoutError as e:
        return ["timed out", str(e)]
    return "not reached"
'''

SPIN_FOREVER = '''
async def run(event, step):
    def spin():
        n = 0
        while True:
            n += 1
    await step.do("spin", spin)
    return "not reached"
'''

HOLD = '''
async def run(event, step):
    got = await step.do("hold", lambda: env.gate.hold())
    after = await step.do("after", lambda: "after")
    return [got, after]
'''


class Gate(Capability):
    """``env.gate.hold()``: the first call blocks until cancelled (or ``opened``); later
    calls return at once. Counts the calls."""

    name = "gate"
    methods = frozenset({"hold"})

    def __init__(self) -> None:
        self.calls = 0
        self.opened = asyncio.Event()
        self.entered = asyncio.Event()

    async def do_hold(self, ctx: CapabilityContext) -> str:
        self.calls += 1
        self.entered.set()
        if self.calls == 1:
            await self.opened.wait()
        return f"held {self.calls}"


# call_timeout far above anything here: the only way a body stops is what is tested.
LIMITS = Limits(call_timeout=100.0, cancel_grace=1.0, memory_bytes=256 * 1024 * 1024)


@pytest.fixture
async def flow() -> AsyncIterator[AgentFlow]:
    af = AgentFlow("memory://", isolation="process", limits=LIMITS, max_workers=8)
    async with af:
        yield af


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    if fields[0] in ("Z", "X"):
        return None
    return (int(fields[11]) + int(fields[12])) / 100


async def test_a_step_timeout_ends_a_spinning_sync_body_and_retries_apply(
        flow: AgentFlow) -> None:
    gate = Gate()
    agent = flow.agent("spinner", capabilities={"gate": gate})
    await agent.submit_plan("spin", SPIN)
    await agent.submit_plan("hold", HOLD)
    # Another instance of the same agent, in the same worker, inside a step body.
    bystander = await agent.start("hold")
    await asyncio.wait_for(gate.entered.wait(), 60)
    inst = await agent.start("spin")
    status = await inst.wait(timeout=90)
    assert status.status == "complete", status.error  # the plan caught the timeout
    assert status.output[0] == "timed out"
    assert "timed out after 1 s" in status.output[1]
    (record,) = await inst.history()
    assert record.status == "error" and record.attempts == 2  # limit 1: two attempts
    assert record.error is not None and record.error["name"] == "WorkflowTimeoutError"
    # The bystander's worker was killed with the spinner's: it was re-run, not failed,
    # and the step it was in was not counted as a failed attempt.
    done = await bystander.wait(timeout=60)
    assert done.status == "complete", done.error
    # Re-run once per kill that caught it in flight: each of the spinner's two attempts
    # kills the worker, and on a busy machine the re-run may still be inside its step
    # when the second one does.
    assert done.output in (["held 2", "after"], ["held 3", "after"])
    history = await bystander.history()
    assert [(r.name, r.status, r.attempts) for r in history] == [
        ("hold", "ok", 1), ("after", "ok", 1)]


async def test_a_step_timeout_ends_an_async_body_and_retries_apply(flow: AgentFlow) -> None:
    gate = Gate()  # the first hold never returns; the retry's returns at once
    agent = flow.agent("async-timeout", capabilities={"gate": gate})
    await agent.submit_plan("hold", '''
async def run(event, step):
    return await step.do("hold", lambda: env.gate.hold(), timeout="1 second",
                         retries={"limit": 1, "delay": 0})
''')
    inst = await agent.start("hold")
    status = await inst.wait(timeout=60)
    assert status.status == "complete", status.error
    assert status.output == "held 2"
    (record,) = await inst.history()
    assert record.status == "ok" and record.attempts == 2


async def test_terminate_kills_a_spinning_body_and_its_cpu_stops(flow: AgentFlow) -> None:
    agent = flow.agent("terminator")
    await agent.submit_plan("spin", SPIN_FOREVER)
    inst = await agent.start("spin")

    def spinning() -> int | None:
        pid = flow.pool.worker_pid("terminator")
        cpu = cpu_seconds(pid) if pid is not None else None
        return pid if cpu is not None and cpu > 0.3 else None

    pid = await eventually(spinning, timeout=60)
    await inst.terminate()
    # The worker is killed once it shows it will not yield (cancel_grace): its CPU time
    # stops growing because the process is gone.
    await eventually(lambda: cpu_seconds(pid) is None, timeout=30)
    status = await inst.status()
    assert status.status == "terminated"
    assert await inst.history() == []  # nothing of the terminated run was recorded


async def test_terminate_from_another_process_kills_the_spinning_body(
        tmp_path: Path) -> None:
    # The runner and the terminating client share only the database (as `agentflow
    # worker` and `agentflow terminate ID` do): the runner sees the fence move.
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    runner = AgentFlow(url, isolation="process", limits=LIMITS)
    client = AgentFlow(url, run_scheduler=False, isolation="inline")
    async with runner, client:
        agent = runner.agent("far")
        await agent.submit_plan("spin", SPIN_FOREVER)
        inst = await agent.start("spin")

        def spinning() -> int | None:
            pid = runner.pool.worker_pid("far")
            cpu = cpu_seconds(pid) if pid is not None else None
            return pid if cpu is not None and cpu > 0.3 else None

        pid = await eventually(spinning, timeout=60)
        await client.agent("far").terminate(inst.id)
        await eventually(lambda: cpu_seconds(pid) is None, timeout=30)
        assert (await inst.status()).status == "terminated"


async def test_restart_kills_a_spinning_body_and_runs_again(flow: AgentFlow) -> None:
    agent = flow.agent("restarter")
    await agent.submit_plan("spin", SPIN_FOREVER)
    inst = await agent.start("spin")

    def spinning() -> int | None:
        pid = flow.pool.worker_pid("restarter")
        cpu = cpu_seconds(pid) if pid is not None else None
        return pid if cpu is not None and cpu > 0.3 else None

    first = await eventually(spinning, timeout=60)
    await inst.restart()
    await eventually(lambda: cpu_seconds(first) is None, timeout=30)
    second = await eventually(spinning, timeout=60)  # the new run spins in a new worker
    assert second != first
    await inst.terminate()
    await eventually(lambda: cpu_seconds(second) is None, timeout=30)


async def test_pause_lets_the_current_step_finish(flow: AgentFlow) -> None:
    gate = Gate()
    agent = flow.agent("pauser", capabilities={"gate": gate})
    await agent.submit_plan("hold", HOLD)
    inst = await agent.start("hold")
    await asyncio.wait_for(gate.entered.wait(), 60)
    await inst.pause()
    assert (await inst.status()).status == "waiting_for_pause"
    gate.opened.set()
    status = await eventually(lambda: _paused(inst), timeout=60)
    assert status.status == "paused"
    assert [(r.name, r.status) for r in await inst.history()] == [("hold", "ok")]
    assert gate.calls == 1
    await inst.resume()
    done = await inst.wait(timeout=60)
    assert done.output == ["held 1", "after"]


async def _paused(inst: Any) -> Any:
    status = await inst.status()
    return status if status.status == "paused" else None
