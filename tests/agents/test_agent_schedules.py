"""An agent's schedules: its own plans, its own scope, its quotas, the current version."""

from __future__ import annotations

import pytest

from agentflow import AgentFlow, PlanNotFoundError, Quotas, ScheduleNotFoundError
from agentflow.testing import ManualClock

WAITS = '''
async def run(event, step):
    await step.wait_for_event("go", type="go", timeout="1 day")
    return event.payload
'''


async def test_a_schedules_fires_count_against_the_agents_quota() -> None:
    """Instances a schedule starts are the agent's: past its active-instance quota a
    fire is dropped, as `Agent.start` would be refused."""
    clock = ManualClock(start=1_800_000_000.0)
    flow = AgentFlow("memory://", isolation="inline", clock=clock,
                     quotas=Quotas(agent_active_instances=2))
    async with flow:
        agent = flow.agent("a1")
        await agent.submit_plan("w", WAITS)
        await agent.schedules.create("w", every=60, overlap="allow", catchup="all")
        clock.advance(60 * 5 + 1)  # five fires due
        await flow.engine.schedules.fire_due()
        assert len(await agent.instances()) == 2
        assert (await agent.schedules.get("w")).next_fire_at is not None  # it goes on


async def test_schedules_are_scoped_to_the_agent_and_start_the_current_version() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    async with AgentFlow("memory://", isolation="inline", clock=clock) as flow:
        alice, bob = flow.agent("alice"), flow.agent("bob")
        with pytest.raises(PlanNotFoundError):
            await alice.schedules.create("nope", every=60)
        v1 = await alice.submit_plan("p", WAITS)
        await alice.schedules.create("p", every=60, params={"k": 1})
        assert await bob.schedules.list() == []
        with pytest.raises(ScheduleNotFoundError):
            await bob.schedules.pause("p")
        v2 = await alice.submit_plan("p", WAITS.replace("1 day", "2 days"))
        assert v1.version != v2.version
        clock.advance(61)
        await flow.engine.schedules.fire_due()
        [inst] = await alice.instances()
        assert inst.version == v2.version  # each fire starts the current version
        assert await bob.instances() == []
        assert (await alice.schedules.get("p")).last_instance_id == inst.id
