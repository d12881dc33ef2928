"""Status transitions driven from outside: pause, resume, terminate, restart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentflow import Engine, Event, InvalidArgumentError, InvalidStateError, Step
from agentflow.testing import ManualClock
from tests.conftest import eventually


async def test_pause_waiting_then_resume(engine: Engine, clock: ManualClock) -> None:
    @engine.workflow("nap")
    async def nap(event: Event, step: Step) -> str:
        await step.sleep("nap", 60)
        return "done"

    inst = await engine.binding("nap").create()
    assert (await inst.wait(timeout=5)).status == "waiting"
    await inst.pause()
    assert (await inst.status()).status == "paused"
    clock.advance(120)  # the timer falls due while paused: nothing runs
    assert (await inst.wait(timeout=5)).status == "paused"
    await inst.pause()  # idempotent
    await inst.resume()
    assert (await inst.wait(timeout=5)).output == "done"


async def test_pause_a_running_instance_stops_after_the_current_step(engine: Engine) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    after: list[int] = []

    async def slow() -> int:
        entered.set()
        await release.wait()
        return 1

    @engine.workflow("busy")
    async def busy(event: Event, step: Step) -> int:
        a = await step.do("slow", slow)
        b = await step.do("after", lambda: after.append(1) or 2)
        return a + b

    inst = await engine.binding("busy").create()
    await asyncio.wait_for(entered.wait(), 5)
    await inst.pause()
    assert (await inst.status()).status == "waiting_for_pause"
    release.set()
    assert (await inst.wait(timeout=5)).status == "paused"
    assert after == []  # the step after the pause point did not run
    history = await inst.history()
    assert [(h.name, h.status) for h in history] == [("slow", "ok")]
    await inst.resume()
    assert (await inst.wait(timeout=5)).output == 3
    assert after == [1]


async def test_resume_while_waiting_for_pause_cancels_the_pause(engine: Engine) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow() -> int:
        entered.set()
        await release.wait()
        return 1

    @engine.workflow("busy")
    async def busy(event: Event, step: Step) -> int:
        return int(await step.do("slow", slow)) + int(await step.do("next", lambda: 1))

    inst = await engine.binding("busy").create()
    await asyncio.wait_for(entered.wait(), 5)
    await inst.pause()
    await inst.resume()
    assert (await inst.status()).status == "running"
    release.set()
    assert (await inst.wait(timeout=5)).output == 2


async def test_terminate_stops_for_good(engine: Engine, clock: ManualClock) -> None:
    ran: list[str] = []

    @engine.workflow("t")
    async def t(event: Event, step: Step) -> None:
        await step.sleep("nap", 10)
        ran.append("after")

    inst = await engine.binding("t").create()
    await inst.wait(timeout=5)
    await inst.terminate()
    clock.advance(20)
    assert (await inst.wait(timeout=5)).status == "terminated"
    assert ran == []
    await inst.terminate()  # idempotent
    with pytest.raises(InvalidStateError, match="terminated"):
        await inst.resume()
    with pytest.raises(InvalidStateError):
        await inst.send_event("x", 1)


async def test_terminate_a_running_instance_discards_the_rest(engine: Engine) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    after: list[int] = []

    async def slow() -> int:
        entered.set()
        await release.wait()
        return 1

    @engine.workflow("busy")
    async def busy(event: Event, step: Step) -> None:
        await step.do("slow", slow)
        await step.do("after", lambda: after.append(1))

    inst = await engine.binding("busy").create()
    await asyncio.wait_for(entered.wait(), 5)
    await inst.terminate()
    release.set()
    await eventually(lambda: not engine._running, what="the run to stop")
    status = await inst.status()
    assert status.status == "terminated"
    assert after == []
    assert await inst.history() == []  # its commit was fenced off


async def test_controls_on_finished_instances(engine: Engine) -> None:
    @engine.workflow("quick")
    async def quick(event: Event, step: Step) -> int:
        return 1

    inst = await engine.binding("quick").create()
    await inst.wait(timeout=5)
    for action in (inst.pause, inst.resume, inst.terminate):
        with pytest.raises(InvalidStateError, match="complete"):
            await action()


async def test_restart_from_scratch_and_from_step(engine: Engine) -> None:
    calls: dict[str, int] = {"a": 0, "b": 0, "c": 0}

    def body(name: str) -> Any:
        def run() -> int:
            calls[name] += 1
            return calls[name]
        return run

    @engine.workflow("abc")
    async def abc(event: Event, step: Step) -> list[int]:
        return [await step.do(n, body(n)) for n in "abc"]

    inst = await engine.binding("abc").create()
    assert (await inst.wait(timeout=5)).output == [1, 1, 1]
    await inst.restart(from_step="b")
    assert (await inst.wait(timeout=5)).output == [1, 2, 2]  # a kept, b and c ran again
    await inst.restart()
    assert (await inst.wait(timeout=5)).output == [2, 3, 3]
    with pytest.raises(InvalidArgumentError, match=r"no step named 'zzz'.*\['a', 'b', 'c'\]"):
        await inst.restart(from_step="zzz")


async def test_restart_an_errored_instance(engine: Engine) -> None:
    fail = [True]

    def body() -> str:
        if fail[0]:
            raise ValueError("not yet")
        return "fixed"

    @engine.workflow("e")
    async def e(event: Event, step: Step) -> Any:
        return await step.do("x", body, retries={"limit": 0})

    inst = await engine.binding("e").create()
    assert (await inst.wait(timeout=5)).status == "errored"
    fail[0] = False
    await inst.restart()
    status = await inst.wait(timeout=5)
    assert status.status == "complete" and status.output == "fixed" and status.error is None


async def test_restart_drops_events_consumed_by_dropped_steps(engine: Engine) -> None:
    @engine.workflow("ev")
    async def ev(event: Event, step: Step) -> Any:
        return (await step.wait_for_event("e", type="go"))["payload"]

    inst = await engine.binding("ev").create()
    await inst.wait(timeout=5)
    await inst.send_event("go", 1)
    assert (await inst.wait(timeout=5)).output == 1
    await inst.restart()
    assert (await inst.wait(timeout=5)).status == "waiting"  # the old event is not replayed
    await inst.send_event("go", 2)
    assert (await inst.wait(timeout=5)).output == 2


async def test_restart_drops_events_sent_to_the_old_run_and_not_yet_consumed(
        engine: Engine, clock: ManualClock) -> None:
    # An approval sent while the old run had not reached its wait yet was meant for that
    # run: a restart must not hand it to the new one (nobody approved the new run).
    @engine.workflow("late")
    async def late(event: Event, step: Step) -> Any:
        await step.sleep("nap", 60)
        return (await step.wait_for_event("approval", type="approval"))["payload"]

    inst = await engine.binding("late").create()
    assert (await inst.wait(timeout=5)).waiting_on.kind == "sleep"  # type: ignore[union-attr]
    await inst.send_event("approval", "for the old run")
    await inst.restart()
    assert (await inst.wait(timeout=5)).waiting_on.kind == "sleep"  # type: ignore[union-attr]
    clock.advance(120)
    status = await inst.wait(timeout=5)
    assert status.status == "waiting" and status.waiting_on is not None
    assert status.waiting_on.kind == "event"
    await inst.send_event("approval", "for the new run")
    assert (await inst.wait(timeout=5)).output == "for the new run"


async def test_restart_from_step_keeps_events_of_kept_steps_only(
        engine: Engine, clock: ManualClock) -> None:
    @engine.workflow("two")
    async def two(event: Event, step: Step) -> Any:
        first = await step.wait_for_event("first", type="a")
        await step.sleep("nap", 60)
        second = await step.wait_for_event("second", type="b")
        return [first["payload"], second["payload"]]

    inst = await engine.binding("two").create()
    await inst.wait(timeout=5)
    await inst.send_event("a", 1)
    assert (await inst.wait(timeout=5)).waiting_on.kind == "sleep"  # type: ignore[union-attr]
    await inst.send_event("b", "old")
    await inst.restart(from_step="nap")
    assert (await inst.wait(timeout=5)).waiting_on.kind == "sleep"  # type: ignore[union-attr]
    clock.advance(120)
    status = await inst.wait(timeout=5)
    assert status.status == "waiting" and status.waiting_on is not None
    assert status.waiting_on.kind == "event" and status.waiting_on.type == "b"
    await inst.send_event("b", "new")
    assert (await inst.wait(timeout=5)).output == [1, "new"]


async def test_restart_during_a_step_ends_the_old_run_and_keeps_the_new_ones_lease() -> None:
    # Short leases: a new run whose lease were not renewed would be claimed again (and
    # its step run a third time) well within the test.
    starts: list[int] = []
    old_cancelled, release = asyncio.Event(), asyncio.Event()

    async def body() -> str:
        starts.append(len(starts) + 1)
        if len(starts) == 1:
            try:
                await asyncio.Event().wait()  # the old run's step: never ends by itself
            except asyncio.CancelledError:
                old_cancelled.set()
                raise
        await release.wait()
        return "done"

    async with Engine("memory://", lease_seconds=0.4) as engine:
        @engine.workflow("long")
        async def long(event: Event, step: Step) -> Any:
            return await step.do("work", body)

        inst = await engine.binding("long").create()
        await eventually(lambda: len(starts) == 1, what="the first run's step")
        await inst.restart()
        await eventually(old_cancelled.is_set, what="the old run to be cancelled")
        await eventually(lambda: len(starts) == 2, what="the new run's step")
        claimed = (await engine.store.get_instance(inst.id)).lease_until  # type: ignore[union-attr]
        assert claimed is not None

        async def renewed_twice() -> bool:
            row = await engine.store.get_instance(inst.id)
            return bool(row and row.lease_until and row.lease_until > claimed + 0.8)

        await eventually(renewed_twice, what="the new run's lease to be renewed")
        release.set()
        status = await inst.wait(timeout=5)
    assert status.output == "done"
    assert starts == [1, 2]
