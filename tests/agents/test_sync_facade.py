"""``with AgentFlow(url).in_thread() as af:``: a plain script authors, starts, waits for
and steers instances, with no ``await`` anywhere."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

from agentflow import AgentFlow, SyncAgent, SyncAgentFlow, SyncInstance, UsageError

PLAN = '''
async def run(event, step):
    doubled = await step.do("double", lambda: event.payload["n"] * 2)
    decision = await step.wait_for_event("go", type="go", timeout="1 hour")
    return {"n": doubled, "go": decision["payload"]}
'''


@pytest.mark.parametrize("cls", [SyncAgentFlow, SyncAgent, SyncInstance])
def test_no_public_method_of_the_facade_is_async(cls: type) -> None:
    for name, member in inspect.getmembers(cls):
        if not name.startswith("_"):
            assert not inspect.iscoroutinefunction(member), f"{cls.__name__}.{name}"


def test_a_sync_script_steers_an_instance_end_to_end(tmp_path: Path) -> None:
    with AgentFlow(f"sqlite:///{tmp_path}/sync.db", isolation="inline").in_thread() as af:
        agent = af.agent("a1")
        assert agent.validate(PLAN).ok
        version = agent.submit_plan("double", PLAN)
        assert [p.version for p in agent.plans()] == [version.version]
        inst = agent.start("double", {"n": 21})
        status = inst.wait(timeout=30)
        assert status.status == "waiting" and status.waiting_on is not None
        assert [p.instance_id for p in agent.pending_events()] == [inst.id]
        agent.send_event(inst.id, "go", {"ok": True})
        done = agent.wait(inst.id, timeout=30)
        assert done.status == "complete"
        assert done.output == {"n": 42, "go": {"ok": True}}
        assert [h.name for h in inst.history()] == ["double", "go"]
        assert [s.id for s in agent.instances("complete")] == [inst.id]
        # Steering: restart, pause, resume, terminate; all blocking calls.
        inst.restart()
        assert inst.wait(timeout=30).status == "waiting"
        agent.pause(inst.id)
        assert agent.status(inst.id).status == "paused"
        agent.resume(inst.id)
        agent.terminate(inst.id)
        assert inst.status().status == "terminated"
        assert af.instance(inst.id).status().status == "terminated"
        assert len(af.list_instances()) == 1


def test_restart_with_upgrade_moves_to_the_current_version(tmp_path: Path) -> None:
    with AgentFlow(f"sqlite:///{tmp_path}/up.db", isolation="inline").in_thread() as af:
        agent = af.agent("a1")
        v1 = agent.submit_plan("p", PLAN)
        inst = agent.start("p", {"n": 1})
        inst.wait(timeout=30)
        v2 = agent.submit_plan("p", PLAN.replace("* 2", "* 3"))
        assert inst.version == v1.version
        inst.restart(upgrade=True)
        assert inst.version == v2.version
        agent.send_event(inst.id, "go", True)
        assert agent.wait(inst.id, timeout=30).output == {"n": 3, "go": True}


async def test_a_sync_call_on_the_flows_own_loop_is_refused() -> None:
    flow = AgentFlow("memory://", isolation="inline")
    with flow.in_thread() as af:
        agent = af.agent("a1")
        loop = af.loop

        async def from_inside() -> None:
            agent.plans()
        with pytest.raises(UsageError, match="block"):
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(from_inside(), loop))
    with pytest.raises(UsageError, match="no longer running"):
        agent.plans()

