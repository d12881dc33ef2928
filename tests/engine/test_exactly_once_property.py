"""A property test: over any interleaving of sends, gathered waits and restarts, every
event completes at most one wait, and waits complete as far as the events allow.

The model follows the documented restart rule (`Instance.restart`): a restart drops
every event not consumed yet and those consumed by the steps it drops; events consumed
by the kept steps stay consumed by them; events sent after the restart reach the new run.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentflow import Engine, Event, Step
from agentflow.testing import ManualClock

WAITS = 3


async def gathered(event: Event, step: Step) -> list[Any]:
    got = await asyncio.gather(*(step.wait_for_event(f"w{i}", type="t", timeout="30 days")
                                 for i in range(WAITS)))
    return [g["payload"] for g in got]


actions = st.lists(st.one_of(
    st.just(("send",)), st.just(("send",)), st.just(("send",)),
    st.just(("restart",)),
    st.tuples(st.just("restart_from"), st.integers(0, WAITS - 1))), max_size=12)


async def check(url: str, plan: list[tuple[Any, ...]]) -> None:
    engine = Engine(url, clock=ManualClock(start=1_800_000_000.0))
    engine.register("gathered", gathered)
    async with engine:
        inst = await engine.binding("gathered").create(id=f"p-{uuid.uuid4().hex[:10]}")
        kept: set[int] = set()   # consumed by steps a restart kept
        fresh: set[int] = set()  # sent since the last restart
        sent = 0
        await inst.wait(timeout=60)
        for action in plan:
            if action[0] == "send":
                if (await inst.status()).is_terminal:
                    continue  # refused: a finished instance takes no events
                sent += 1
                await inst.send_event("t", sent)
                fresh.add(sent)
            else:
                journal = await inst.history()
                if action[0] == "restart":
                    await inst.restart()
                    kept = set()
                else:
                    name = f"w{action[1]}"
                    seqs = [h.seq for h in journal if h.name == name]
                    if not seqs:
                        continue
                    await inst.restart(from_step=name)
                    kept = {h.result["payload"] for h in journal
                            if h.seq < seqs[0] and h.status == "ok"}
                fresh = set()
            status = await inst.wait(timeout=60)
            done = [h.result["payload"] for h in await inst.history()
                    if h.kind == "event" and h.status == "ok"]
            assert len(done) == len(set(done)), f"an event completed two waits: {done}"
            assert kept <= set(done) <= kept | fresh, (done, kept, fresh)
            assert len(done) == min(WAITS, len(kept) + len(fresh)), (done, kept, fresh)
            if len(done) == WAITS:
                assert status.status == "complete"
                assert sorted(status.output) == sorted(done)
            else:
                assert status.status == "waiting"
                assert len(status.waits) == WAITS - len(done)  # every open wait listed


@settings(max_examples=60, deadline=None)
@given(plan=actions)
def test_events_complete_at_most_one_wait_in_memory(plan: list[tuple[Any, ...]]) -> None:
    asyncio.run(check("memory://", plan))


@pytest.mark.usefixtures("postgres_url")
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=actions)
def test_events_complete_at_most_one_wait_on_postgres(postgres_url: str,
                                                      plan: list[tuple[Any, ...]]) -> None:
    asyncio.run(check(postgres_url, plan))
