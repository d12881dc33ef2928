"""A corpus of plans written the way models write them, each with its expected outcome.

Valid plans validate (with the agent's grants) and run to the right output. Rejected
plans are rejected on the right line, with a hint that names the fix; then each is
fixed as its hint says (the fix puts the hint's text into the plan) and runs to its
output. The plans run inline on a manual clock, so days of sleeps take milliseconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentflow.plans import AgentFlow
from agentflow.testing import ManualClock
from tests.authoring.harness import CorpusPlan, drive, grants, load

PLANS = load("corpus")
VALID = [p for p in PLANS if "expect" not in p.header]
REJECTED = [p for p in PLANS if "expect" in p.header]


@pytest.fixture
async def flow() -> AsyncIterator[tuple[AgentFlow, ManualClock]]:
    clock = ManualClock(start=1_800_000_000.0)
    async with AgentFlow("memory://", clock=clock, isolation="inline") as af:
        yield af, clock


def test_the_corpus_is_large_and_mixed() -> None:
    assert len(PLANS) >= 40
    assert len(VALID) >= 15 and len(REJECTED) >= 15
    assert all("output" in p.header for p in PLANS), [p.name for p in PLANS
                                                       if "output" not in p.header]


@pytest.mark.parametrize("plan", VALID, ids=lambda p: p.name)
async def test_a_valid_plan_runs_to_its_output(flow: tuple[AgentFlow, ManualClock],
                                               plan: CorpusPlan) -> None:
    af, clock = flow
    agent = af.agent("model", capabilities=grants(plan.grant_names))
    report = agent.validate(plan.source)
    assert report.ok, report.diagnostics
    status = await drive(agent, clock, plan, plan.source, plan.name)
    assert status.status == "complete", status.error
    assert status.output == plan.json("output")


@pytest.mark.parametrize("plan", REJECTED, ids=lambda p: p.name)
async def test_a_rejected_plan_is_fixed_as_its_hint_says_and_runs(
        flow: tuple[AgentFlow, ManualClock], plan: CorpusPlan) -> None:
    af, clock = flow
    agent = af.agent("model", capabilities=grants(plan.grant_names))
    code, text = plan.expected("expect")
    report = agent.validate(plan.source)
    assert not report.ok
    found = [d for d in report.diagnostics if d.code == code]
    assert found, report.diagnostics
    assert found[0].line == plan.line_of(text), found[0]
    says = plan.header["hint-says"]
    assert says in found[0].hint, found[0].hint

    fixed = plan.fixed()  # second pass: what the hint says, applied
    assert plan.header.get("applied", says) in fixed and fixed != plan.source
    again = agent.validate(fixed)
    assert again.ok, again.diagnostics
    status = await drive(agent, clock, plan, fixed, plan.name)
    assert status.status == "complete", status.error
    assert status.output == plan.json("output")
