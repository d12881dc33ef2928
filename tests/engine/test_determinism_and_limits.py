"""Non-determinism is detected, and every documented limit has a clear error."""

from __future__ import annotations

from typing import Any

import pytest

from agentflow import (
    Engine,
    Event,
    InvalidArgumentError,
    LimitExceededError,
    NonDeterminismError,
    Step,
)
from agentflow._limits import MAX_STEPS
from agentflow.testing import ManualClock


async def test_replay_with_a_different_step_name_errors_the_instance(
        engine: Engine, clock: ManualClock) -> None:
    version = ["v1"]

    @engine.workflow("drift")
    async def drift(event: Event, step: Step) -> str:
        await step.do("first" if version[0] == "v1" else "renamed", lambda: 1)
        await step.sleep("nap", 10)
        return "done"

    inst = await engine.binding("drift").create()
    await inst.wait(timeout=5)
    version[0] = "v2"
    clock.advance(10)
    status = await inst.wait(timeout=5)
    assert status.status == "errored"
    assert status.error is not None
    assert status.error["name"] == "NonDeterminismError"
    assert "'first'" in status.error["message"] and "'renamed'" in status.error["message"]


async def test_replay_with_a_different_kind_errors_even_if_caught(
        engine: Engine, clock: ManualClock) -> None:
    version = ["v1"]

    @engine.workflow("kind")
    async def kind(event: Event, step: Step) -> str:
        if version[0] == "v1":
            await step.do("x", lambda: 1)
        else:
            try:
                await step.sleep("x", 1)
            except NonDeterminismError:
                return "swallowed"
        await step.sleep("nap", 10)
        return "done"

    inst = await engine.binding("kind").create()
    await inst.wait(timeout=5)
    version[0] = "v2"
    clock.advance(10)
    status = await inst.wait(timeout=5)
    assert status.status == "errored"
    assert status.error is not None and status.error["name"] == "NonDeterminismError"
    assert "do 'x'" in status.error["message"] and "sleep 'x'" in status.error["message"]


async def test_step_name_limit(engine: Engine) -> None:
    @engine.workflow("names")
    async def names(event: Event, step: Step) -> list[str]:
        await step.do("n" * 256, lambda: 1)
        out = []
        for bad in ["n" * 257, ""]:
            try:
                await step.do(bad, lambda: 1)
            except (LimitExceededError, InvalidArgumentError) as exc:
                out.append(type(exc).__name__)
        return out

    out = (await (await engine.binding("names").create()).wait(timeout=5)).output
    assert out == ["LimitExceededError", "InvalidArgumentError"]


async def test_steps_per_instance_limit(engine: Engine) -> None:
    @engine.workflow("many")
    async def many(event: Event, step: Step) -> int:
        for i in range(MAX_STEPS + 1):
            try:
                await step.do("s", lambda: None)
            except LimitExceededError:
                return i  # a plan that catches it is still errored
        return -1

    status = await (await engine.binding("many").create()).wait(timeout=60)
    assert status.status == "errored"
    assert status.error is not None and status.error["name"] == "LimitExceededError"
    assert "10,000 steps" in status.error["message"]
    assert len(await (await engine.get_instance(status.id)).history()) == MAX_STEPS


async def test_step_result_limit(engine: Engine) -> None:
    calls = 0

    def big() -> str:
        nonlocal calls
        calls += 1
        return "x" * (1024 * 1024)

    @engine.workflow("big")
    async def big_wf(event: Event, step: Step) -> str:
        try:
            await step.do("big", big)
        except LimitExceededError as exc:
            return str(exc)
        return "stored"

    out = (await (await engine.binding("big").create()).wait(timeout=5)).output
    assert "result of step 'big'" in out and "1 MiB" in out
    assert calls == 1  # not retried: it would fail the same way


async def test_payload_and_id_limits_write_nothing(engine: Engine) -> None:
    @engine.workflow("w")
    async def w(event: Event, step: Step) -> Any:
        return event.payload

    wf = engine.binding("w")
    with pytest.raises(LimitExceededError, match=r"params of instance .big.*1 MiB"):
        await wf.create(params="x" * (1024 * 1024), id="big")
    with pytest.raises(InvalidArgumentError, match="JSON-serializable"):
        await wf.create(params={"when": object()}, id="notjson")
    for bad in ["has space", "", "semi;colon", "ü", "ends-in-newline\n", "x\n"]:
        with pytest.raises(InvalidArgumentError, match="instance id"):
            await wf.create(id=bad)
    with pytest.raises(LimitExceededError, match="101 characters, over the limit of 100"):
        await wf.create(id="x" * 101)
    await wf.create(id="x" * 100)
    assert [s.id for s in await engine.list_instances()] == ["x" * 100]
    with pytest.raises(InvalidArgumentError, match="event type"):
        await (await wf.get("x" * 100)).send_event("approval\n", 1)


async def test_bad_durations_are_clear(engine: Engine) -> None:
    @engine.workflow("d")
    async def d(event: Event, step: Step) -> list[str]:
        out = []
        for bad in ["soon", "-5 seconds", -1, "3 fortnights", True, 10**400]:
            try:
                await step.sleep(f"bad {bad!s:.20}", bad)
            except InvalidArgumentError as exc:
                out.append(str(exc))
        return out

    out = (await (await engine.binding("d").create()).wait(timeout=5)).output
    assert len(out) == 6
    assert "not understood" in out[0] and "'90 seconds'" in out[0]
    assert "finite" in out[5]  # an int too large for a float, not an OverflowError


@pytest.mark.parametrize("name", ["a\x00b", "two\nlines", "\x1b[2J", "cr\r", "del\x7f",
                                  "rtl\u202eevil", "zw\u200bj", "lsep\u2028", "bom\ufeff"])
async def test_step_and_wait_names_refuse_control_bidi_and_zero_width_characters(
        name: str) -> None:
    engine = Engine("memory://", clock=ManualClock())
    seen: list[str] = []

    @engine.workflow("names")
    async def names(event: Any, step: Any) -> Any:
        for call in (lambda: step.do(name, lambda: 1), lambda: step.sleep(name, 1),
                     lambda: step.wait_for_event(name, type="t")):
            try:
                await call()
            except InvalidArgumentError as exc:
                seen.append(str(exc))
        return len(seen)

    async with engine:
        inst = await engine.binding("names").create()
        status = await inst.wait(timeout=30)
        assert await inst.history() == []  # nothing was journaled under such a name
    assert status.output == 3, status.error
    assert all("control, zero-width or bidirectional" in text for text in seen)
