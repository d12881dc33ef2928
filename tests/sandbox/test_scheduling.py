"""Worker slots: a busy worker is never evicted; past `max_workers`, runs wait for a
slot, first come first served across agents, and every run completes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sandbox import Limits, WorkerPool
from tests.sandbox.support import RecordingHost, make_event, plan, wait_until

LIMITS = Limits(call_timeout=30.0, memory_bytes=256 * 1024 * 1024)

THREE_STEPS = plan('''
a = await step.do("one", lambda: 1)
b = await step.do("two", lambda: a + 1)
c = await step.do("three", lambda: b + 1)
return [a, b, c]
''')


class GatedHost(RecordingHost):
    """Runs each step body only once ``gate`` opens, and counts the bodies run."""

    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__()
        self.gate = gate
        self.entered = asyncio.Event()

    async def step(self, op: str, args: dict[str, Any],
                   run_body: Callable[[], Awaitable[Any]] | None) -> Any:
        self.entered.set()
        await self.gate.wait()
        return await super().step(op, args, run_body)


async def test_many_more_agents_than_workers_all_complete() -> None:
    # 40 agents, 4 slots, every run started at once: none may lose its worker.
    async with WorkerPool(limits=LIMITS, max_workers=4) as pool:
        peak = 0

        async def one(i: int) -> Any:
            nonlocal peak
            result = await pool.run_plan(f"many-{i}", THREE_STEPS, make_event(),
                                         RecordingHost(), capabilities=[])
            peak = max(peak, len([a for a in range(40) if pool.worker_pid(f"many-{a}")]))
            return result

        results = await asyncio.gather(*(one(i) for i in range(40)), return_exceptions=True)
        assert [r for r in results if r != [1, 2, 3]] == []
        assert peak <= 4


async def test_a_busy_worker_is_not_evicted_and_a_new_agent_waits_for_a_slot() -> None:
    async with WorkerPool(limits=LIMITS, max_workers=2) as pool:
        gate = asyncio.Event()
        hosts = {name: GatedHost(gate) for name in ("busy-a", "busy-b", "late-c")}
        tasks = {name: asyncio.ensure_future(pool.run_plan(
            name, THREE_STEPS, make_event(instance_id=name), hosts[name], capabilities=[],
            label=f"inst-{name}")) for name in ("busy-a", "busy-b")}
        await asyncio.wait_for(asyncio.gather(hosts["busy-a"].entered.wait(),
                                              hosts["busy-b"].entered.wait()), 60)
        pids = {name: pool.worker_pid(name) for name in ("busy-a", "busy-b")}
        tasks["late-c"] = asyncio.ensure_future(pool.run_plan(
            "late-c", THREE_STEPS, make_event(), hosts["late-c"], capabilities=[],
            label="inst-late-c"))
        await wait_until(lambda: pool.waiting, timeout=60, what="late-c to queue")
        assert [(agent, label) for agent, label, _since in pool.waiting] == [
            ("late-c", "inst-late-c")]
        assert pool.waiting_since("inst-late-c") is not None
        assert not hosts["late-c"].entered.is_set()
        assert {name: pool.worker_pid(name) for name in pids} == pids  # not evicted
        gate.set()
        results = await asyncio.wait_for(asyncio.gather(*tasks.values()), 60)
        assert results == [[1, 2, 3]] * 3
        assert pool.waiting == []
        assert pool.worker_pid("late-c") is not None


async def test_slots_are_granted_in_arrival_order_across_agents() -> None:
    async with WorkerPool(limits=LIMITS, max_workers=1) as pool:
        gate = asyncio.Event()
        holder = GatedHost(gate)
        first = asyncio.ensure_future(pool.run_plan("fifo-hold", THREE_STEPS, make_event(),
                                                    holder, capabilities=[]))
        await asyncio.wait_for(holder.entered.wait(), 60)
        order: list[str] = []

        async def queued(agent: str) -> None:
            await pool.run_plan(agent, plan('return 1'), make_event(), RecordingHost(),
                                capabilities=[])
            order.append(agent)

        names = [f"fifo-{i}" for i in range(6)]
        waiters = []
        for name in names:
            waiters.append(asyncio.ensure_future(queued(name)))
            await wait_until(lambda n=name: any(a == n for a, _l, _s in pool.waiting),
                             timeout=60, what=f"{name} to queue")
        # A run of the holding agent that arrives now queues too, behind the others:
        # it cannot jump the line by joining its busy worker.
        late = asyncio.ensure_future(queued("fifo-hold"))
        await wait_until(lambda: len(pool.waiting) == 7, timeout=60, what="all queued")
        gate.set()
        await asyncio.wait_for(asyncio.gather(first, late, *waiters), 60)
        assert order == [*names, "fifo-hold"]


async def test_a_cancelled_waiter_leaves_the_line() -> None:
    async with WorkerPool(limits=LIMITS, max_workers=1) as pool:
        gate = asyncio.Event()
        holder = GatedHost(gate)
        first = asyncio.ensure_future(pool.run_plan("cancel-hold", THREE_STEPS, make_event(),
                                                    holder, capabilities=[]))
        await asyncio.wait_for(holder.entered.wait(), 60)
        waiter = asyncio.ensure_future(pool.run_plan("cancel-w", plan("return 1"),
                                                     make_event(), RecordingHost(),
                                                     capabilities=[]))
        await wait_until(lambda: pool.waiting, timeout=60, what="waiter to queue")
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        assert pool.waiting == []
        gate.set()
        assert await asyncio.wait_for(first, 60) == [1, 2, 3]
        assert await pool.run_plan("cancel-next", plan("return 2"), make_event(),
                                   RecordingHost(), capabilities=[]) == 2
