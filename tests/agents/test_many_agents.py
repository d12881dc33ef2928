"""Many more agents than worker slots, through the whole stack (engine, dispatch,
confined workers): every instance completes, and a run that waits for a slot says so in
its status."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentflow import AgentFlow
from agentflow.capabilities import Capability, CapabilityContext
from sandbox import Limits
from tests.conftest import eventually

THREE_STEPS = '''
async def run(event, step):
    a = await step.do("one", lambda: 1)
    b = await step.do("two", lambda: a + 1)
    c = await step.do("three", lambda: b + event.payload)
    return [a, b, c]
'''

HOLD = '''
async def run(event, step):
    return await step.do("hold", lambda: env.gate.hold())
'''

LIMITS = Limits(call_timeout=60.0, memory_bytes=256 * 1024 * 1024)


class Gate(Capability):
    name = "gate"
    methods = frozenset({"hold"})

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.holding = 0

    async def do_hold(self, ctx: CapabilityContext) -> str:
        self.holding += 1
        await self.opened.wait()
        return ctx.agent_id


async def test_forty_agents_on_four_workers_all_complete() -> None:
    async with AgentFlow("memory://", isolation="process", limits=LIMITS,
                         max_workers=4) as af:
        agents = [af.agent(f"tenant-{i}") for i in range(40)]
        for agent in agents:
            await agent.submit_plan("three", THREE_STEPS)
        instances = await asyncio.gather(*(agent.start("three", params=i)
                                           for i, agent in enumerate(agents)))
        statuses = [await inst.wait(timeout=120) for inst in instances]
        assert [s.status for s in statuses] == ["complete"] * 40, [
            s.error for s in statuses if s.status != "complete"]
        assert [s.output for s in statuses] == [[1, 2, 2 + i] for i in range(40)]


async def test_a_run_waiting_for_a_slot_shows_it_in_status() -> None:
    gate = Gate()
    async with AgentFlow("memory://", isolation="process", limits=LIMITS,
                         max_workers=2) as af:
        holders = [af.agent(f"holder-{i}", capabilities={"gate": gate}) for i in range(2)]
        for agent in holders:
            await agent.submit_plan("hold", HOLD)
        held = [await agent.start("hold") for agent in holders]
        await eventually(lambda: gate.holding == 2, timeout=60, what="both holders in")
        late = af.agent("late")
        await late.submit_plan("three", THREE_STEPS)
        inst = await late.start("three", params=0)

        async def waiting() -> bool:
            return (await inst.status()).waiting_for_worker

        await eventually(waiting, timeout=60, what="the late run to wait for a slot")
        status = await inst.status()
        assert status.status == "running"
        assert [s.waiting_for_worker for s in await late.instances()] == [True]
        gate.opened.set()
        assert (await inst.wait(timeout=60)).output == [1, 2, 2]
        assert not (await inst.status()).waiting_for_worker
        assert [(await h.wait(timeout=60)).output for h in held] == ["holder-0", "holder-1"]


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_another_process_sees_a_run_waiting_for_a_slot(
        store: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The wait is recorded in the store (after a second), so a reader in another
    process (here: another AgentFlow on the same database, with its own pool that runs
    nothing) shows it too; before, only the process running the instance knew."""
    url = (str(request.getfixturevalue("postgres_url")) if store == "postgresql"
           else f"sqlite:///{tmp_path}/slots.db")
    gate = Gate()
    async with AgentFlow(url, isolation="process", limits=LIMITS, max_workers=1) as af, \
            AgentFlow(url, isolation="inline", run_scheduler=False) as reader:
        holder = af.agent("holder", capabilities={"gate": gate})
        await holder.submit_plan("hold", HOLD)
        held = await holder.start("hold")
        await eventually(lambda: gate.holding == 1, timeout=60, what="the holder in")
        late = af.agent("late")
        await late.submit_plan("three", THREE_STEPS)
        inst = await late.start("three", params=0)
        seen = reader.agent("late")

        async def waiting_elsewhere() -> bool:
            return (await seen.status(inst.id)).waiting_for_worker

        await eventually(waiting_elsewhere, timeout=60, what="the reader to see the wait")
        assert [s.waiting_for_worker for s in await seen.instances()] == [True]
        gate.opened.set()
        assert (await inst.wait(timeout=60)).output == [1, 2, 2]
        assert not (await seen.instances())[0].waiting_for_worker
        assert (await held.wait(timeout=60)).output == "holder"
