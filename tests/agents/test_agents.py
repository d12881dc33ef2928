"""The agent API: plan versions and pinning, per-agent isolation, pending events."""

from __future__ import annotations

import pytest

from agentflow import (
    AgentFlow,
    InstanceNotFoundError,
    InvalidArgumentError,
    PlanNotFoundError,
    PlanValidationError,
)
from agentflow.testing import ManualClock

V1 = '''
async def run(event, step):
    await step.wait_for_event("go", type="go")
    return "v1"
'''
V2 = V1.replace('"v1"', '"v2"')


async def test_submit_validates_and_versions_by_content(af: AgentFlow) -> None:
    agent = af.agent("a")
    with pytest.raises(PlanValidationError) as bad:
        await agent.submit_plan("p", "import os\nasync def run(event, step):\n    return 1\n")
    assert bad.value.report.diagnostics[0].code.startswith("AF")
    assert await agent.plans() == []
    v1 = await agent.submit_plan("p", V1)
    again = await agent.submit_plan("p", V1)
    assert v1.version == again.version and len(v1.version) == 16
    v2 = await agent.submit_plan("p", V2)
    assert v2.version != v1.version
    assert [p.version for p in await agent.plans()] == [v2.version]
    assert [p.version for p in await agent.plan_versions("p")] == [v1.version, v2.version]
    assert await agent.plan_source("p", v1.version) == V1
    for bad_name in ("bad name!", "p\n"):
        with pytest.raises(InvalidArgumentError, match="plan name"):
            await agent.submit_plan(bad_name, V1)
    with pytest.raises(InvalidArgumentError, match="agent id"):
        af.agent("a\n")  # would be another agent than "a", passing for it in logs
    with pytest.raises(PlanNotFoundError):
        await agent.start("missing")


async def test_running_instance_keeps_its_version_until_upgraded(af: AgentFlow) -> None:
    agent = af.agent("a")
    await agent.submit_plan("p", V1)
    old = await agent.start("p")
    assert (await old.wait(timeout=5)).status == "waiting"
    await agent.submit_plan("p", V2)
    new = await agent.start("p")
    await new.wait(timeout=5)
    await agent.send_event(old.id, "go")
    await agent.send_event(new.id, "go")
    assert (await old.wait(timeout=5)).output == "v1"  # pinned to the version it started on
    assert (await new.wait(timeout=5)).output == "v2"
    await agent.restart(old.id)
    await agent.send_event(old.id, "go")
    assert (await old.wait(timeout=5)).output == "v1"  # a plain restart keeps v1
    await agent.restart(old.id, upgrade=True)
    await agent.send_event(old.id, "go")
    assert (await old.wait(timeout=5)).output == "v2"
    assert (await agent.get(old.id)).version == (await agent.plans())[0].version


async def test_pending_events_lists_what_waits(af: AgentFlow, clock: ManualClock) -> None:
    agent = af.agent("a")
    await agent.submit_plan("p", V1)
    inst = await agent.start("p", id="w1")
    await inst.wait(timeout=5)
    [pending] = await agent.pending_events()
    assert (pending.instance_id, pending.plan, pending.type, pending.step) == (
        "w1", "p", "go", "go")
    assert pending.deadline.timestamp() == pytest.approx(clock.now() + 86400)
    assert await af.agent("b").pending_events() == []


async def test_agent_b_cannot_see_or_touch_agent_a(af: AgentFlow) -> None:
    a, b = af.agent("alice"), af.agent("bob")
    await a.submit_plan("secret-plan", V1)
    inst = await a.start("secret-plan", id="alice-1")
    await inst.wait(timeout=5)
    before = (await a.status("alice-1"), await a.history("alice-1"))

    def same_as_missing(exc_a: BaseException, exc_missing: BaseException) -> None:
        assert type(exc_a) is type(exc_missing)
        assert str(exc_a).replace("alice-1", "ID") == str(exc_missing).replace("nope", "ID")

    calls = {
        "get": lambda i: b.get(i), "status": lambda i: b.status(i),
        "history": lambda i: b.history(i), "wait": lambda i: b.wait(i, timeout=1),
        "send_event": lambda i: b.send_event(i, "go", {}), "pause": lambda i: b.pause(i),
        "resume": lambda i: b.resume(i), "terminate": lambda i: b.terminate(i),
        "restart": lambda i: b.restart(i), "upgrade": lambda i: b.restart(i, upgrade=True),
    }
    for name, call in calls.items():
        with pytest.raises(InstanceNotFoundError) as theirs:
            await call("alice-1")
        with pytest.raises(InstanceNotFoundError) as missing:
            await call("nope")
        same_as_missing(theirs.value, missing.value)
        assert name

    for name, call in {"start": lambda p: b.start(p),
                       "plan_source": lambda p: b.plan_source(p),
                       "plan_versions": lambda p: b.plan_versions(p)}.items():
        with pytest.raises(PlanNotFoundError) as theirs:
            await call("secret-plan")
        with pytest.raises(PlanNotFoundError) as missing:
            await call("nope")
        assert str(theirs.value).replace("secret-plan", "X") == str(
            missing.value).replace("nope", "X"), name
    assert await b.plans() == []
    assert await b.instances() == []
    assert await b.pending_events() == []
    # Same id, other agent: bob's own instance cannot take alice's id either.
    with pytest.raises(InvalidArgumentError, match="already exists"):
        await b.submit_plan("p", V1) and await b.start("p", id="alice-1")
    # Nothing of alice's changed.
    assert (await a.status("alice-1"), await a.history("alice-1")) == before
    assert [s.id for s in await a.instances()] == ["alice-1"]
