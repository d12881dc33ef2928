"""Every example plan in ``prompts/`` is extracted and run, in a confined worker, with a
manual clock: what the guide teaches a model really works as it says."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from agentflow import AgentFlow, AgentInstance, ManualClock
from agentflow.capabilities import Capability, CapabilityContext
from agentflow.tools import load_prompt

PROMPTS = ["plan-authoring", "debug-instance"]


def examples() -> list[str]:
    return [block for name in PROMPTS
            for block in re.findall(r"```python\n(.*?)```", load_prompt(name), re.S)]


class Payments(Capability):
    """A card processor that declines, or accepts, every charge; counts the calls."""

    name = "payments"
    methods = frozenset({"charge"})

    def __init__(self, *, declines: bool) -> None:
        self.declines, self.calls = declines, 0

    async def do_charge(self, context: CapabilityContext, order: str) -> dict[str, Any]:
        self.calls += 1
        if self.declines:
            raise ValueError(f"card declined for {order}")
        return {"charged": order}


Drive = Callable[[AgentInstance, ManualClock], Awaitable[None]]


async def settle(inst: AgentInstance) -> str:
    """Wait until the instance stops to wait on a running step; its status name."""
    return (await inst.wait(timeout=20)).status


async def nothing(inst: AgentInstance, clock: ManualClock) -> None:
    await settle(inst)


def send(event_type: str, payload: Any, then: str | None = None) -> Drive:
    async def drive(inst: AgentInstance, clock: ManualClock) -> None:
        status = await inst.wait(timeout=20)
        assert status.status == "waiting" and status.waiting_on is not None
        assert status.waiting_on.kind == "event" and status.waiting_on.type == event_type
        await inst.send_event(event_type, payload)
        if then is not None:
            await advance_through(inst, clock, then)
    return drive


async def advance_through(inst: AgentInstance, clock: ManualClock, duration: str) -> None:
    status = await inst.wait(timeout=20)
    assert status.status == "waiting", status
    clock.advance(duration)


def advance(duration: str, times: int = 1) -> Drive:
    async def drive(inst: AgentInstance, clock: ManualClock) -> None:
        for _ in range(times):
            await advance_through(inst, clock, duration)
    return drive


async def through_retries(inst: AgentInstance, clock: ManualClock) -> None:
    """Move the clock to each retry's time until the step stops retrying."""
    for _ in range(10):
        status = await inst.wait(timeout=20)
        if status.waiting_on is None or status.waiting_on.kind != "retry":
            return
        assert status.waiting_on.until is not None
        clock.set(status.waiting_on.until)
    raise AssertionError("still retrying after 10 retries")


@dataclass(frozen=True)
class Scenario:
    marker: str          # a text only that example contains
    params: Any
    drive: Drive
    status: str
    output: Any = None
    error: str | None = None
    payments: Payments | None = None
    payment_calls: int | None = None


SCENARIOS = [
    Scenario('"greet"', {"name": "Ada"}, nothing, "complete", {"greeting": "hello Ada"}),
    Scenario('"describe change"', {"service": "db"},
             send("approval", {"approved": True, "comment": "", "by": "human"},
                  then="6 hours"),
             "complete", {"status": "approved", "change": {"service": "db"}}),
    Scenario('"describe change"', {"service": "db"},
             send("approval", {"approved": False, "comment": "not now", "by": "human"}),
             "complete", {"status": "rejected", "comment": "not now"}),
    Scenario('"reply"', {}, send("reply", {"answer": 42}), "complete",
             {"status": "answered", "answer": {"answer": 42}}),
    Scenario('"reply"', {}, advance("2 days"), "complete", {"status": "no reply"}),
    Scenario('"check order"', {"order": {"id": "o1", "total": 5}}, nothing, "complete",
             {"order": "o1", "ok": True}),
    Scenario('"check order"', {"order": {"id": "o2", "total": 0}}, nothing, "errored",
             error="NonRetryableError"),
    Scenario('f"measure {item}"', {"items": ["a", "bb"]}, nothing, "complete",
             {"results": [{"item": "a", "size": 1}, {"item": "bb", "size": 2}],
              "sizes": [{"item": i, "size": 1} for i in range(3)]}),  # not 3x the last
    Scenario('"reserve stock"', {"order": "o7"}, nothing, "complete",
             {"status": "paid", "hold": "H-o7"}, payments=Payments(declines=False),
             payment_calls=1),
    Scenario('"reserve stock"', {"order": "o8"}, through_retries, "complete",
             {"status": "failed", "error": "card declined for o8"},
             payments=Payments(declines=True), payment_calls=3),
]


def test_every_example_has_a_scenario_and_every_scenario_an_example() -> None:
    blocks = examples()
    assert len(blocks) >= 6
    for block in blocks:
        assert any(s.marker in block for s in SCENARIOS), f"no scenario runs:\n{block}"
    for scenario in SCENARIOS:
        matches = [b for b in blocks if scenario.marker in b]
        assert len(matches) == 1, (scenario.marker, len(matches))


@pytest.fixture
async def flow(clock: ManualClock) -> AsyncIterator[AgentFlow]:
    async with AgentFlow("memory://", clock=clock) as af:  # confined workers
        yield af


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: f"{s.marker}-{s.status}")
async def test_example_runs_as_the_guide_says(flow: AgentFlow, clock: ManualClock,
                                              scenario: Scenario) -> None:
    [source] = [b for b in examples() if scenario.marker in b]
    grants = {"payments": scenario.payments} if scenario.payments else {}
    agent = flow.agent("reader", capabilities=grants)
    assert agent.validate(source).ok
    await agent.submit_plan("example", source)
    inst = await agent.start("example", params=scenario.params)
    await scenario.drive(inst, clock)
    status = await inst.wait(timeout=20)
    assert status.status == scenario.status, status
    if scenario.error is None:
        assert status.output == scenario.output
    else:
        assert status.error is not None and status.error["name"] == scenario.error
    if scenario.payments is not None:
        assert scenario.payments.calls == scenario.payment_calls
