"""Every event is consumed by at most one wait: under ``gather`` in one run, across
worker processes, and over any interleaving of sends, waits and restarts. On a SQLite
file and on PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

from agentflow import Engine
from agentflow._instance import open_waits
from agentflow.testing import ManualClock
from tests.engine.harness import query, start_worker, statuses, wait_for
from tests.engine.workloads import pair


def gather_app(url: str, clock: ManualClock | None = None, **options: Any) -> Engine:
    engine = Engine(url, clock=clock, **options)
    engine.register("pair", pair)
    return engine


async def test_one_event_completes_one_of_two_gathered_waits(db_url: str) -> None:
    async with gather_app(db_url, ManualClock(start=1_800_000_000.0)) as engine:
        inst = await engine.binding("pair").create(id="g1")
        st = await inst.wait(timeout=60)
        assert st.status == "waiting"
        assert [(w.step, w.type) for w in st.waits] == [("first", "go"), ("second", "go")]

        await inst.send_event("go", "only one")
        await wait_for(lambda: _ok_waits(db_url, "g1") == 1, 60, "one wait to complete")
        st = await inst.wait(timeout=60)
        assert st.status == "waiting"  # the other wait still waits
        [left] = st.waits
        assert left.type == "go"
        assert _ok_waits(db_url, "g1") == 1

        await inst.send_event("go", "the second")
        st = await inst.wait(timeout=60)
        assert st.status == "complete"
        assert sorted(st.output) == ["only one", "the second"]


def _ok_waits(db: str, instance_id: str) -> int:
    [(n,)] = query(db, "SELECT count(*) FROM steps WHERE kind = 'event' AND status = 'ok'"
                       f" AND instance_id = '{instance_id}'")
    return int(n)


async def test_across_two_worker_processes_each_event_completes_one_wait(
        tmp_path: Path, db_url: str) -> None:
    count = 12
    client = gather_app(db_url, run_scheduler=False)
    workers = [start_worker(db_url, tmp_path / "steps.log", lease=5.0) for _ in range(2)]
    try:
        # Both workers up (their banner printed, signal handlers installed) first.
        await wait_for(lambda: _banners(tmp_path) >= 2, 60, "both workers to start")
        async with client:
            made = await client.binding("pair").create_batch(
                [{"id": f"x{i}"} for i in range(count)])
            await wait_for(lambda: sum(s == "waiting" for s, _ in statuses(db_url).values())
                           == count, 60, "every instance to wait")
            for inst in made:  # one event each, while both workers poll and claim
                await inst.send_event("go", f"{inst.id}-a")
            await wait_for(lambda: sum(_ok_waits(db_url, f"x{i}") for i in range(count))
                           == count, 60, "one wait of each instance to complete")
            await asyncio.sleep(0)
            assert all(_ok_waits(db_url, f"x{i}") == 1 for i in range(count))
            for inst in made:
                await inst.send_event("go", f"{inst.id}-b")
            await wait_for(lambda: all(s == "complete" for s, _ in statuses(db_url).values()),
                           60, "every instance to complete")
            for inst in made:
                out = (await inst.status()).output
                assert sorted(out) == [f"{inst.id}-a", f"{inst.id}-b"]
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(timeout=30) == 0


def _banners(folder: Path) -> int:
    err = folder / "workers.err"
    return err.read_text().count("agentflow worker ") if err.exists() else 0


async def test_an_event_addressed_to_a_wait_is_consumed_by_that_wait_only(db_url: str
                                                                          ) -> None:
    async with gather_app(db_url, ManualClock(start=1_800_000_000.0)) as engine:
        inst = await engine.binding("pair").create(id="g2")
        assert (await inst.wait(timeout=60)).status == "waiting"
        row = await engine.store.get_instance("g2")
        assert row is not None
        second = next(o for o in open_waits(row) if o.wait.step == "second")
        assert await inst.send_event_to_wait(second.ref, "go", "for the second")
        assert not await inst.send_event_to_wait(second.ref, "go", "again")  # answered
        st = await inst.wait(timeout=60)
        [left] = st.waits  # the first still waits: it did not take the second's event
        assert left.step == "first"
        await inst.send_event("go", "for the first", step="first")
        st = await inst.wait(timeout=60)
        assert st.output == ["for the first", "for the second"], st
