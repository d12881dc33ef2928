"""Sleeps, sleep_until, event waits with buffering and timeouts, and what a waiting
instance says it waits on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from agentflow import (
    Engine,
    Event,
    InvalidArgumentError,
    InvalidStateError,
    LimitExceededError,
    Step,
    WorkflowTimeoutError,
)
from agentflow.testing import ManualClock


async def test_three_day_sleep_with_manual_clock(engine: Engine, clock: ManualClock) -> None:
    runs = 0

    @engine.workflow("nap")
    async def nap(event: Event, step: Step) -> str:
        nonlocal runs
        runs += 1
        await step.sleep("nap", "3 days")
        return "rested"

    inst = await engine.binding("nap").create()
    status = await inst.wait(timeout=5)
    assert status.status == "waiting"
    assert status.waiting_on is not None
    assert status.waiting_on.kind == "sleep" and status.waiting_on.step == "nap"
    assert status.waiting_on.until == datetime.fromtimestamp(clock.now() + 3 * 86400, tz=UTC)
    clock.advance("2 days")
    assert (await inst.wait(timeout=5)).status == "waiting"
    clock.advance("1 day")
    assert (await inst.wait(timeout=5)).output == "rested"
    assert runs == 2


async def test_sleep_until_past_returns_at_once_and_future_waits(engine: Engine,
                                                                 clock: ManualClock) -> None:
    @engine.workflow("until")
    async def until(event: Event, step: Step) -> str:
        await step.sleep_until("past", clock.now() - 10)
        await step.sleep_until("future", datetime.fromtimestamp(clock.now() + 60, tz=UTC))
        return "done"

    inst = await engine.binding("until").create()
    status = await inst.wait(timeout=5)
    assert status.waiting_on is not None and status.waiting_on.step == "future"
    clock.advance(60)
    assert (await inst.wait(timeout=5)).output == "done"


async def test_sleep_is_capped_at_365_days(engine: Engine) -> None:
    @engine.workflow("long")
    async def long(event: Event, step: Step) -> str:
        try:
            await step.sleep("forever", "366 days")
        except LimitExceededError as exc:
            return str(exc)
        return "slept"

    out = (await (await engine.binding("long").create()).wait(timeout=5)).output
    assert "365 days" in out


async def test_event_wakes_a_waiting_instance(engine: Engine, clock: ManualClock) -> None:
    @engine.workflow("approve")
    async def approve(event: Event, step: Step) -> Any:
        decision = await step.wait_for_event("approval", type="approval", timeout="7 days")
        return decision

    inst = await engine.binding("approve").create()
    status = await inst.wait(timeout=5)
    assert status.status == "waiting"
    assert status.waiting_on is not None
    assert status.waiting_on.kind == "event" and status.waiting_on.type == "approval"
    assert status.waiting_on.until.timestamp() == pytest.approx(clock.now() + 7 * 86400)
    await inst.send_event("approval", {"approved": True})
    out = (await inst.wait(timeout=5)).output
    assert out["type"] == "approval" and out["payload"] == {"approved": True}
    assert datetime.fromisoformat(out["timestamp"]).timestamp() == pytest.approx(clock.now())


async def test_events_sent_early_are_buffered_fifo_per_type(engine: Engine) -> None:
    gate: list[str] = []

    @engine.workflow("fifo")
    async def fifo(event: Event, step: Step) -> list[Any]:
        await step.wait_for_event("gate", type="go")
        got = []
        for i in range(3):
            ev = await step.wait_for_event(f"item {i}", type="item")
            got.append(ev["payload"])
        other = await step.wait_for_event("other", type="other")
        gate.append("done")
        return [*got, other["payload"]]

    inst = await engine.binding("fifo").create()
    assert (await inst.wait(timeout=5)).status == "waiting"
    for i in range(3):
        await inst.send_event("item", i)
    await inst.send_event("other", "x")
    await inst.send_event("go")
    assert (await inst.wait(timeout=5)).output == [0, 1, 2, "x"]


async def test_event_wait_times_out_with_workflow_timeout_error(engine: Engine,
                                                                clock: ManualClock) -> None:
    @engine.workflow("timeout")
    async def timeout(event: Event, step: Step) -> str:
        try:
            await step.wait_for_event("approval", type="approval", timeout="1 hour")
        except WorkflowTimeoutError as exc:
            return f"timed out: {exc}"
        return "approved"

    inst = await engine.binding("timeout").create()
    assert (await inst.wait(timeout=5)).status == "waiting"
    clock.advance("1 hour")
    assert (await inst.wait(timeout=5)).output.startswith("timed out: no 'approval' event")
    # A late event does not change a finished instance.
    with pytest.raises(InvalidStateError, match="complete"):
        await inst.send_event("approval", {})


async def test_uncaught_event_timeout_errors_the_instance(engine: Engine,
                                                          clock: ManualClock) -> None:
    @engine.workflow("strict")
    async def strict(event: Event, step: Step) -> None:
        await step.wait_for_event("approval", type="approval", timeout=30)

    inst = await engine.binding("strict").create()
    await inst.wait(timeout=5)
    clock.advance(30)
    status = await inst.wait(timeout=5)
    assert status.status == "errored"
    assert status.error is not None and status.error["name"] == "WorkflowTimeoutError"


async def test_event_of_another_type_does_not_wake(engine: Engine) -> None:
    runs = 0

    @engine.workflow("picky")
    async def picky(event: Event, step: Step) -> Any:
        nonlocal runs
        runs += 1
        return (await step.wait_for_event("w", type="wanted"))["payload"]

    inst = await engine.binding("picky").create()
    await inst.wait(timeout=5)
    await inst.send_event("unwanted", 1)
    assert (await inst.wait(timeout=5)).status == "waiting"
    assert runs == 1
    await inst.send_event("wanted", 2)
    assert (await inst.wait(timeout=5)).output == 2


async def test_bad_event_types_and_payloads(engine: Engine) -> None:
    @engine.workflow("w")
    async def w(event: Event, step: Step) -> None:
        await step.wait_for_event("w", type="ok")

    inst = await engine.binding("w").create()
    for bad in ["", "-starts-with-dash", "has space", "x" * 101, "ünï"]:
        with pytest.raises(InvalidArgumentError, match="event type"):
            await inst.send_event(bad, {})
    with pytest.raises(InvalidArgumentError, match="JSON"):
        await inst.send_event("ok", object())
    with pytest.raises(LimitExceededError, match="1 MiB"):
        await inst.send_event("ok", "x" * (1024 * 1024 + 1))


async def test_journaled_helpers_are_stable_across_replay(engine: Engine,
                                                          clock: ManualClock) -> None:
    seen: list[tuple[Any, ...]] = []

    @engine.workflow("helpers")
    async def helpers(event: Event, step: Step) -> list[Any]:
        now = await step.now()
        r = await step.random()
        u = await step.uuid()
        seen.append((now, r, u))
        await step.sleep("pause", 5)
        return [now.isoformat(), r, u]

    inst = await engine.binding("helpers").create()
    await inst.wait(timeout=5)
    clock.advance(5)
    status = await inst.wait(timeout=5)
    assert len(seen) == 2 and seen[0] == seen[1]
    now, r, u = seen[0]
    assert now == datetime.fromtimestamp(clock.now() - 5, tz=UTC)
    assert 0 <= r < 1 and len(u) == 36
    assert status.output == [now.isoformat(), r, u]


def count_reads(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the engine's single-instance store reads from now on, in ``[n]``."""
    reads = [0]
    get_instance = engine.store.get_instance

    async def counting(instance_id: str) -> Any:
        reads[0] += 1
        return await get_instance(instance_id)

    monkeypatch.setattr(engine.store, "get_instance", counting)
    return reads


async def test_waiting_on_many_instances_reads_each_one_a_few_times(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A change wakes only the waiters of the instances it touched: with every waiter
    woken by every change, waiting on n instances read the store O(n^2) times (219,650
    reads for 1,000 three-step instances)."""
    engine = Engine(db_url, max_concurrency=2)  # runs end one by one, each a change

    @engine.workflow("three")
    async def three(event: Event, step: Step) -> int:
        a = await step.do("one", lambda: 1)
        b = await step.do("two", lambda: a + 1)
        return await step.do("three", lambda: b * 2)

    async with engine:
        reads = count_reads(engine, monkeypatch)
        n = 150
        instances = await engine.binding("three").create_batch(
            [{"params": i} for i in range(n)])
        # A poll far longer than the test: every read counted is one a change caused.
        statuses = await asyncio.gather(*(inst.wait(timeout=300, poll=600)
                                          for inst in instances))
    assert [s.output for s in statuses] == [4] * n
    assert reads[0] <= 4 * n, f"{reads[0]} store reads to wait on {n} instances"


async def test_waiters_on_work_of_another_process_poll_the_store_together(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting on instances another engine runs reads the store in one batched query
    per poll, not one read per waiter per poll (1,000 waiters at the default 0.2 s poll
    made 5,000 reads a second)."""
    n = 100
    runner, watcher = Engine(db_url), Engine(db_url)

    @runner.workflow("slow")
    async def slow(event: Event, step: Step) -> int:
        await step.do("nap", lambda: asyncio.sleep(1.0))
        return 1

    async with runner, watcher:
        created = await runner.binding("slow").create_batch([{}] * n)
        instances = [await watcher.get_instance(inst.id) for inst in created]
        reads = count_reads(watcher, monkeypatch)
        statuses = await asyncio.gather(*(inst.wait(timeout=300, poll=0.05)
                                          for inst in instances))
        assert [s.output for s in statuses] == [1] * n
    assert reads[0] <= 5 * n, f"{reads[0]} single-row reads to wait on {n} instances"


async def test_a_waiter_wakes_when_its_engine_closes(db_url: str) -> None:
    engine = Engine(db_url)

    @engine.workflow("forever")
    async def forever(event: Event, step: Step) -> None:
        await step.wait_for_event("never", type="never", timeout="1 day")

    async with engine:
        inst = await engine.binding("forever").create()
        first = await inst.wait(timeout=60)
        assert first.status == "waiting"
    # Closed: waiting asks the store, and says the engine is not started.
    from agentflow import EngineNotStartedError
    with pytest.raises(EngineNotStartedError):
        await inst.wait(timeout=60)
