"""The public operations the tools, app loading and dispatch use (instead of private
names): guarded sends against a wait reference, restart on a checked version, statuses
that carry plan and version, grants, and app adoption."""

from __future__ import annotations

import pytest

from agentflow import (
    AgentFlow,
    Engine,
    Event,
    InvalidArgumentError,
    PlanNotFoundError,
    Step,
    WorkflowNotFoundError,
)
from agentflow.capabilities import KVCapability
from agentflow.plans import AgentInstanceStatus, adopt_apps
from agentflow.testing import ManualClock

V1 = '''
async def run(event, step):
    await step.wait_for_event("go", type="go")
    return "v1"
'''
V2 = V1.replace('"v1"', '"v2"')
V3 = V1.replace('"v1"', '"v3"')
WAIT = 30  # generous: a deadline, not a speed claim


async def test_a_send_to_a_wait_reaches_only_that_wait(af: AgentFlow) -> None:
    agent = af.agent("a")
    await agent.submit_plan("p", V1)
    inst = await agent.start("p")
    await inst.wait(timeout=WAIT)
    status, ref = await inst.status_and_wait_ref()
    assert status.status == "waiting" and ref is not None
    assert (status.plan, status.version) == ("p", inst.version)

    await inst.restart()  # a new run: the same step, but not the wait that was seen
    await inst.wait(timeout=WAIT)
    _, new_ref = await inst.status_and_wait_ref()
    assert new_ref is not None and new_ref != ref
    assert await inst.send_event_to_wait(ref, "go", {"n": 1}) is False
    assert (await inst.status()).status == "waiting"  # nothing was sent
    assert [r.status for r in await inst.history() if r.kind == "event"] == ["waiting"]

    assert await inst.send_event_to_wait(new_ref, "go", {"n": 2}) is True
    assert (await inst.wait(timeout=WAIT)).output == "v1"
    _, finished_ref = await inst.status_and_wait_ref()
    assert finished_ref is None


async def test_restart_on_a_checked_version(af: AgentFlow) -> None:
    agent = af.agent("a")
    v1 = await agent.submit_plan("p", V1)
    inst = await agent.start("p")
    await inst.wait(timeout=WAIT)
    v2 = await agent.submit_plan("p", V2)
    await agent.submit_plan("p", V3)  # submitted after the check: must not slip in
    assert (await agent.current_version("p")).version != v2.version

    await inst.restart(version=v2.version)
    assert inst.version == v2.version
    await inst.wait(timeout=WAIT)
    await inst.send_event("go")
    assert (await inst.wait(timeout=WAIT)).output == "v2"
    assert (await agent.get(inst.id)).version == v2.version

    with pytest.raises(PlanNotFoundError):
        await inst.restart(version="0000000000000000")
    with pytest.raises(InvalidArgumentError, match="not both"):
        await inst.restart(upgrade=True, version=v1.version)
    assert (await agent.get(inst.id)).version == v2.version  # refusals changed nothing
    with pytest.raises(PlanNotFoundError):
        await agent.current_version("missing")


async def test_listed_statuses_carry_plan_and_version(af: AgentFlow) -> None:
    agent = af.agent("a")
    v1 = await agent.submit_plan("p", V1)
    first = await agent.start("p", id="first")
    v2 = await agent.submit_plan("p", V2)
    await agent.start("p", id="second")
    await first.wait(timeout=WAIT)
    listed = await agent.instances()
    assert all(isinstance(s, AgentInstanceStatus) for s in listed)
    assert sorted((s.id, s.plan, s.version) for s in listed) == [
        ("first", "p", v1.version), ("second", "p", v2.version)]


async def test_grants_are_readable_and_adopted(clock: ManualClock) -> None:
    app = AgentFlow("memory://", clock=clock, isolation="inline", run_scheduler=False)
    kv = KVCapability()
    app.agent("a", capabilities={"kv": kv})
    engine = Engine("memory://", clock=clock)

    @engine.workflow("hello")
    async def hello(event: Event, step: Step) -> str:
        return "hi"

    assert engine.workflow_function("hello") is hello
    with pytest.raises(WorkflowNotFoundError):
        engine.workflow_function("missing")

    flow = AgentFlow("memory://", clock=clock, isolation="inline", run_scheduler=False)
    assert flow.capabilities_of("a") == {}
    adopt_apps(flow, [app, engine])
    assert flow.capabilities_of("a") == {"kv": kv}
    assert flow.agent("a").capabilities == {"kv": kv}
    assert flow.grants == {"a": {"kv": kv}}
    flow.grants["a"].clear()  # a copy: the grants change only through agent()
    assert flow.capabilities_of("a") == {"kv": kv}
    assert "hello" in flow.engine.workflows
    assert flow.engine.workflow_function("hello") is hello
    assert flow.binding.name == "agentflow.plan"


async def test_a_submitted_version_is_compiled_once_in_this_process(af: AgentFlow) -> None:
    from sandbox import _compile

    agent = af.agent("a")
    source = V1.replace('"v1"', '"compiled once"')  # a source no other test compiled
    misses = _compile._compile_cached.cache_info().misses
    version = await agent.submit_plan("p", source)
    inst = await agent.start("p")
    await inst.wait(timeout=WAIT)  # the run loaded the version: a cache hit, not a compile
    await af.compiled("a", "p", version.version)
    assert _compile._compile_cached.cache_info().misses == misses + 1
