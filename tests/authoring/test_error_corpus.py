"""A run-time error corpus: each plan fails, and its error record names the plan line
(with the source text), the function and the step, with a traceback of plan frames
only. Errors that no retry can fix fail their step on the first attempt."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from agentflow.plans import AgentFlow
from agentflow.testing import ManualClock
from tests.authoring.harness import CorpusPlan, drive, grants, load

ERRORS = load("errors")
# What a plan's error must never show: host paths and frames, internal names.
HOST_WORDS = ("/", "\\\\", ".py", "site-packages", "agentflow", "sandbox", "Traceback",
              "workflow '")


@pytest.fixture(params=["inline", "process"])
async def flow(request: pytest.FixtureRequest) -> AsyncIterator[tuple[AgentFlow, ManualClock]]:
    clock = ManualClock(start=1_800_000_000.0)
    async with AgentFlow("memory://", clock=clock, isolation=request.param) as af:
        yield af, clock


def expected_place(plan: CorpusPlan) -> str:
    """The ``at`` words the header implies (or states, with ``at:``)."""
    if "at" in plan.header:
        return plan.header["at"]
    if "step" in plan.header:
        return f"in step {plan.header['step']!r}"
    after = plan.header.get("after-step")
    if plan.expected("error")[1].startswith("(no line"):
        return "in the return value of run, " + (
            f"after step {after!r}" if after else "before any step")
    return f"after step {after!r}" if after else "before the first step"


def test_the_error_corpus_is_there() -> None:
    assert len(ERRORS) >= 12


@pytest.mark.parametrize("plan", ERRORS, ids=lambda p: p.name)
async def test_each_error_names_its_plan_line_and_step(flow: tuple[AgentFlow, ManualClock],
                                                        plan: CorpusPlan) -> None:
    af, clock = flow
    agent = af.agent("model", capabilities=grants(plan.grant_names))
    status = await drive(agent, clock, plan, plan.source, plan.name)
    assert status.status == "errored", (status.status, status.output)
    error = status.error
    assert error is not None
    name, text = plan.expected("error")
    assert error["name"] == name, error
    assert error["message"].strip(), error  # never empty (MemoryError() has none)
    for internal in ("agentflow.plan", "workflow '", "do_get", "KVCapability", "host"):
        assert internal not in error["message"], error["message"]
    if "message-is" in plan.header:
        assert error["message"] == plan.header["message-is"], error["message"]
    if "message-says" in plan.header:
        assert plan.header["message-says"] in error["message"]
    # Where in the run, in words a model can act on (step null when in no step).
    assert error["at"] == expected_place(plan), error
    if text.startswith("(no line"):  # the one case without a plan frame to point at
        assert "where" not in error and error.get("after_step") == plan.header.get(
            "after-step")
        assert error["step"] is None, error
        return
    where = error["where"]
    assert where["line"] == plan.line_of(text), where
    assert text in where["source"] or where["source"] in plan.source.splitlines()[
        where["line"] - 1]
    assert where["function"] == plan.header["function"], where
    assert where["traceback"][-1] == {k: where[k] for k in ("line", "function", "source")}
    if "step" in plan.header:
        assert error.get("step") == plan.header["step"], error
    else:
        assert error["step"] is None, error
    if "after-step" in plan.header:
        assert error.get("after_step") == plan.header["after-step"], error
    frames = [{k: v for k, v in f.items() if k != "source"} for f in where["traceback"]]
    shown = json.dumps({"name": error["name"], "frames": frames, "step": error.get("step"),
                        "function": where["function"]})  # the plan's own text aside
    for word in HOST_WORDS:
        assert word not in shown, (word, shown)
    if "attempts" in plan.header:  # no retry can fix it: failed at the first attempt
        history = await (await agent.get(status.id)).history()
        failed = next(r for r in history if r.name == plan.header["step"])
        assert failed.attempts == int(plan.header["attempts"]), failed
