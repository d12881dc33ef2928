"""Durability across engine restarts on one file, counted by side effects (the DBOS
style): a committed step never runs again."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from agentflow import Engine, Event, Step
from agentflow.store._migrations import SCHEMA_VERSION
from agentflow.testing import ManualClock


def make_engine(url: str, clock: ManualClock, counter: dict[str, int]) -> Engine:
    engine = Engine(url, clock=clock)

    def bump(name: str) -> Any:
        def body() -> int:
            counter[name] = counter.get(name, 0) + 1
            return counter[name]
        return body

    @engine.workflow("durable")
    async def durable(event: Event, step: Step) -> list[Any]:
        a = await step.do("a", bump("a"))
        await step.sleep("nap", "3 days")
        b = await step.do("b", bump("b"))
        ev = await step.wait_for_event("approval", type="approval", timeout="7 days")
        c = await step.do("c", bump("c"))
        return [a, b, ev["payload"], c]

    return engine


async def test_committed_steps_never_run_again_across_restarts(db_url: str) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    counter: dict[str, int] = {}

    async with make_engine(db_url, clock, counter) as engine:
        inst = await engine.binding("durable").create(id="d1")
        status = await inst.wait(timeout=5)
        assert status.waiting_on is not None and status.waiting_on.kind == "sleep"
    assert counter == {"a": 1}

    clock.advance("3 days")
    async with make_engine(db_url, clock, counter) as engine:  # a new process, same file
        inst = await engine.binding("durable").get("d1")
        status = await inst.wait(timeout=5)
        assert status.waiting_on is not None and status.waiting_on.kind == "event"
    assert counter == {"a": 1, "b": 1}

    async with make_engine(db_url, clock, counter) as engine:
        inst = await engine.binding("durable").get("d1")
        await inst.send_event("approval", {"approved": True})
        status = await inst.wait(timeout=5)
    assert status.status == "complete"
    assert status.output == [1, 1, {"approved": True}, 1]
    assert counter == {"a": 1, "b": 1, "c": 1}

    async with make_engine(db_url, clock, counter) as engine:  # and again: nothing runs
        inst = await engine.binding("durable").get("d1")
        await inst.restart(from_step="c")
        assert (await inst.wait(timeout=5)).output == [1, 1, {"approved": True}, 2]
    assert counter == {"a": 1, "b": 1, "c": 2}


async def test_waiting_instances_stay_waiting_at_no_cost(db_url: str) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    counter: dict[str, int] = {}
    async with make_engine(db_url, clock, counter) as engine:
        await engine.binding("durable").create_batch([{"id": f"w{i}"} for i in range(20)])
        for i in range(20):
            await (await engine.binding("durable").get(f"w{i}")).wait(timeout=5)
    runs_before = dict(counter)
    async with make_engine(db_url, clock, counter) as engine:
        # Nothing is due: a fresh process claims nothing and runs nothing.
        claimed = await engine.store.claim_due_instances(
            owner="probe", workflows=["durable"], now=clock.now(), lease_now=0.0,
            lease_until=0.0, limit=100)
        assert claimed == []
        assert [s.status for s in await engine.list_instances()] == ["waiting"] * 20
    assert counter == runs_before


async def test_schema_is_versioned_and_reopening_keeps_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/v.db"
    clock = ManualClock(start=1_800_000_000.0)
    async with make_engine(url, clock, {}) as engine:
        await engine.binding("durable").create(id="keep")
        assert await engine.store.schema_version() == SCHEMA_VERSION
    conn = sqlite3.connect(tmp_path / "v.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()
    async with make_engine(url, clock, {}) as engine:  # migrations are not re-applied
        assert [s.id for s in await engine.list_instances()] == ["keep"]
