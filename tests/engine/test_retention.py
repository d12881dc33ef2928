"""Retention: deleting finished instances with their journal and events, per-agent and
default policies, and space handed back to the file system (SQLite)."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from agentflow import Engine, InstanceNotFoundError, InvalidArgumentError, InvalidStateError
from agentflow.store import NewInstance
from agentflow.testing import ManualClock

T0 = 1_800_000_000.0


async def _engine(url: str, clock: ManualClock) -> Engine:
    engine = Engine(url, clock=clock)

    @engine.workflow("work")
    async def work(event, step):  # type: ignore[no-untyped-def]
        await step.do("one", lambda: "x" * event.payload.get("size", 1))
        if event.payload.get("wait"):
            await step.wait_for_event("go", type="go", timeout="1 day")
        return "done"

    await engine.start()
    return engine


async def _counts(engine: Engine, instance_id: str) -> tuple[int, int]:
    journal = await engine.store.load_journal(instance_id)
    events = await engine.store.pending_events(instance_id, "go", limit=100)
    return len(journal), len(events)


async def test_delete_takes_the_journal_and_events_and_only_finished_ones(db_url: str
                                                                          ) -> None:
    clock = ManualClock(start=T0)
    engine = await _engine(db_url, clock)
    try:
        done = await engine.binding("work").create({"size": 3}, id="done")
        busy = await engine.binding("work").create({"wait": True}, id="busy")
        assert (await done.wait(timeout=30)).status == "complete"
        assert (await busy.wait(timeout=30)).status == "waiting"
        await busy.send_event("other", 1)  # a buffered event of the busy one
        with pytest.raises(InvalidStateError, match="terminate it first"):
            await engine.retention.delete("busy")
        await engine.retention.delete("done")
        with pytest.raises(InstanceNotFoundError):
            await engine.get_instance("done")
        assert await engine.store.load_journal("done") == []
        await busy.terminate()
        await engine.retention.delete("busy")
        assert await engine.store.pending_events("busy", "other") == []
        with pytest.raises(InvalidArgumentError, match="only finished instances"):
            await engine.retention.delete_many(status="waiting")
    finally:
        await engine.close()


async def test_policies_per_agent_and_default_prune_in_batches(db_url: str) -> None:
    clock = ManualClock(start=T0)
    engine = await _engine(db_url, clock)
    try:
        store = engine.store
        # Finished instances of three owners, made directly (the engine's own runs are
        # tested elsewhere): 30 of agent a1, 30 of agent a2, 30 of trusted workflows.
        rows = [NewInstance(f"{who}-{k}", "work", "{}", T0, None if who == "wf" else who)
                for who in ("a1", "a2", "wf") for k in range(30)]
        await store.create_instances(rows)
        for r in rows:
            await (await engine.get_instance(r.id)).wait(timeout=30)
        clock.advance("2 days")
        await engine.retention.set_policy("1 day")  # the default
        await engine.retention.set_policy("7 days", agent="a2")  # a2 keeps longer
        assert await engine.retention.policies() == {None: 86400.0, "a2": 7 * 86400.0}
        report = await engine.retention.prune(batch=7)  # many small transactions
        assert report.deleted == 60
        left = {i.id.split("-")[0] for i in await engine.list_instances(limit=1000)}
        assert left == {"a2"}
        clock.advance("6 days")
        assert (await engine.retention.prune()).deleted == 30
        await engine.retention.set_policy(None, agent="a2")
        assert await engine.retention.policies() == {None: 86400.0}
    finally:
        await engine.close()


async def test_delete_many_by_status_age_and_agent(db_url: str) -> None:
    clock = ManualClock(start=T0)
    engine = await _engine(db_url, clock)
    try:
        await engine.store.create_instances(
            [NewInstance(f"i{k}", "work", "{}", T0, "a1" if k % 2 else None)
             for k in range(10)])
        for k in range(10):
            await (await engine.get_instance(f"i{k}")).wait(timeout=30)
        await (await engine.get_instance("i0")).restart()
        assert (await engine.retention.delete_many(agent="a1", older_than="1 hour")
                ).deleted == 0  # not old enough yet
        clock.advance("2 hours")
        assert (await engine.retention.delete_many(agent="a1", older_than="1 hour",
                                                   limit=3)).deleted == 3
        assert (await engine.retention.delete_many(workflows_only=True)).deleted >= 4
        remaining = await engine.list_instances(limit=100)
        assert all(i.id in {"i1", "i3", "i5", "i7", "i9", "i0"} for i in remaining)
    finally:
        await engine.close()


def _file_size(path: Path) -> int:
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())


async def test_pruning_shrinks_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    clock = ManualClock(start=T0)
    engine = await _engine(f"sqlite:///{path}", clock)
    try:
        ids = [f"big{k}" for k in range(300)]
        await engine.store.create_instances(
            [NewInstance(i, "work", '{"size": 20000}', T0) for i in ids])
        for i in ids:
            await (await engine.get_instance(i)).wait(timeout=60)
        await engine.store.reclaim_space()  # settle the WAL before measuring
        before = _file_size(path)
        report = await engine.retention.delete_many()
        assert report.deleted == 300 and report.pages_freed > 0
        after = _file_size(path)
        assert after < before / 2, (before, after)
    finally:
        await engine.close()


async def test_an_old_file_switches_to_incremental_vacuum_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path)) as db:  # a file made before auto_vacuum was set
        db.execute("CREATE TABLE pad (x)")
        db.execute("DROP TABLE pad")
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    clock = ManualClock(start=T0)
    engine = await _engine(f"sqlite:///{path}", clock)
    try:
        assert await engine.store.reclaim_space() == 0  # nothing incremental to do
        await engine.store.reclaim_space(full=True)
    finally:
        await engine.close()
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
