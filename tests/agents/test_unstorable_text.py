"""Text that UTF-8 cannot hold (a lone surrogate such as '\\udfff') never poisons an
instance: it becomes a clear error, and nothing already done runs again.

Before the fix, a plan that returned such text made every commit of its instance fail in
the store, so the engine ran the instance again and again, repeating its side effects.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow import AgentFlow, InvalidArgumentError
from agentflow.capabilities import KVCapability, ToolsCapability

RETURNS = '''
async def run(event, step):
    await step.do("effect", lambda: env.tools.call("effect"))
    return "bad \\udfff text"
'''

STEP_RETURNS = '''
async def run(event, step):
    await step.do("effect", lambda: env.tools.call("effect"))
    try:
        await step.do("bad", lambda: "\\ud800")
    except Exception as exc:
        return {"caught": "lone surrogate" in str(exc)}
    return "not reached"
'''

RAISES = '''
async def run(event, step):
    await step.do("effect", lambda: env.tools.call("effect"))
    async def fail():
        raise ValueError("bad \\udfff message")
    await step.do("fail", fail, retries={"limit": 0})
'''

KV_KEY = '''
async def run(event, step):
    await step.do("effect", lambda: env.tools.call("effect"))
    await step.do("store", lambda: env.kv.set("k\\udfff", 1), retries={"limit": 0})
'''

STEP_NAME = '''
async def run(event, step):
    await step.do("effect", lambda: env.tools.call("effect"))
    await step.do("name \\udfff", lambda: 1)
'''


@pytest.fixture
async def flow(tmp_path: Path) -> AgentFlow:
    return AgentFlow(f"sqlite:///{tmp_path / 'af.db'}")


@pytest.mark.parametrize(("source", "expect"), [
    (RETURNS, ("errored", "InvalidArgumentError", "lone surrogate")),
    (STEP_RETURNS, ("complete", None, None)),
    (RAISES, ("errored", "ValueError", "bad \ufffd message")),
    (KV_KEY, ("errored", "CapabilityError", "lone surrogate")),
    (STEP_NAME, ("errored", "InvalidArgumentError", "lone surrogate")),
], ids=["run-returns", "step-returns", "step-raises", "kv-key", "step-name"])
async def test_unstorable_text_ends_the_instance_once(
        flow: AgentFlow, source: str, expect: tuple[str, str | None, str | None]) -> None:
    effects: list[int] = []

    def effect() -> int:
        effects.append(1)
        return len(effects)

    async with flow:
        agent = flow.agent("a", capabilities={"tools": ToolsCapability({"effect": effect}),
                                              "kv": KVCapability()})
        await agent.submit_plan("p", source)
        instance = await agent.start("p")
        status = await instance.wait(timeout=30)  # a poisoned instance never rests
    want_status, want_name, want_text = expect
    assert status.status == want_status, status
    if want_status == "complete":
        assert status.output == {"caught": True}
    else:
        assert status.error is not None
        assert status.error["name"] == want_name
        assert want_text is not None and want_text in status.error["message"]
    assert effects == [1]  # the step before ran once: no replay loop repeated it


async def test_event_payload_with_a_lone_surrogate_is_refused(flow: AgentFlow) -> None:
    async with flow:
        agent = flow.agent("a")
        await agent.submit_plan("p", 'async def run(event, step):\n'
                                     '    got = await step.wait_for_event("w", type="go")\n'
                                     '    return got["payload"]\n')
        instance = await agent.start("p")
        await instance.wait(timeout=30)
        with pytest.raises(InvalidArgumentError, match="lone surrogate"):
            await agent.send_event(instance.id, "go", {"x": "\udfff"})
        await agent.send_event(instance.id, "go", {"x": "fine"})
        assert (await instance.wait(timeout=30)).output == {"x": "fine"}
