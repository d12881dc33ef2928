"""An agent plan that gathers two waits on one event type: both are listed, and one
event completes exactly one of them (the approval that satisfied two approvers)."""

from __future__ import annotations

import asyncio
from typing import Any

from agentflow import AgentFlow

TWO_APPROVERS = '''
async def run(event, step):
    first, second = await gather(
        step.wait_for_event("first approver", type="approval", timeout="7 days"),
        step.wait_for_event("second approver", type="approval", timeout="7 days"))
    return [first["payload"], second["payload"]]
'''


async def test_one_approval_completes_one_of_two_gathered_waits(af: AgentFlow) -> None:
    agent = af.agent("a1")
    await agent.submit_plan("two", TWO_APPROVERS)
    inst = await agent.start("two")
    assert (await inst.wait(timeout=60)).status == "waiting"
    pending = await agent.pending_events()
    assert sorted((p.instance_id, p.type, p.step) for p in pending) == [
        (inst.id, "approval", "first approver"), (inst.id, "approval", "second approver")]

    await agent.send_event(inst.id, "approval", {"approved": True, "by": "ada"})
    st = await inst.wait(timeout=60)
    assert st.status == "waiting"
    done = [h for h in await inst.history() if h.kind == "event" and h.status == "ok"]
    assert len(done) == 1
    left_waits = await agent.pending_events()
    assert len(left_waits) == 1, (left_waits, await inst.history(), await inst.status())
    [left] = left_waits
    assert left.step != done[0].name

    await agent.send_event(inst.id, "approval", {"approved": True, "by": "grace"})
    st = await inst.wait(timeout=60)
    assert st.status == "complete"
    assert sorted(p["by"] for p in st.output) == ["ada", "grace"]


PLAN = '''
async def run(event, step):
    return await step.do("work", lambda: 42)
'''


async def test_a_facade_opened_only_to_read_claims_nothing(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/read.db"
    async with AgentFlow(url, isolation="inline", run_scheduler=False) as author:
        agent = author.agent("a1")
        await agent.submit_plan("p", PLAN)
        inst = await agent.start("p")  # due now; no worker runs anywhere
        await agent.schedule("p", every="1 second")  # and a schedule that falls due
    for n in range(3):
        async with AgentFlow(url, isolation="inline") as reader:
            agent = reader.agent("a1")
            assert [s.status for s in await agent.instances()] == ["queued"]
            assert (await agent.status(inst.id)).status == "queued"
            assert await agent.history(inst.id) == []
            assert await agent.pending_events() == []
            row = await reader.engine.store.get_instance(inst.id)
            assert row is not None and (row.fence, row.lease_owner) == (0, None)
            if n == 2:  # a reader fires no schedule either, however long it stays open
                await asyncio.sleep(1.5)
        assert [s.id for s in await _all_instances(url)] == [inst.id]
    async with AgentFlow(url, isolation="inline") as runner:  # waiting asks for progress
        st = await runner.agent("a1").wait(inst.id, timeout=60)
        assert (st.status, st.output) == ("complete", 42)


async def _all_instances(url: str) -> list[Any]:
    async with AgentFlow(url, isolation="inline", run_scheduler=False) as flow:
        return list(await flow.engine.list_instances())
