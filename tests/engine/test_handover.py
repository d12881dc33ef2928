"""Clean hand-over: a process that exits leaves nothing claimed, and a later worker
starts the work at once. Nothing is killed here: every process ends normally. On a
SQLite file and on PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from typing import Any

from agentflow import Engine, Event, Step
from tests.conftest import eventually
from tests.engine.harness import REPO, query

SCRIPT = textwrap.dedent('''
    import asyncio, sys
    from agentflow import Engine

    engine = Engine(sys.argv[1], lease_seconds=600)

    @engine.workflow("greet")
    async def greet(event, step):
        name = await step.do("lookup", lambda: event.payload["name"])
        await step.sleep("cool off", 0)
        return f"hello {name}"

    async def main():
        async with engine:
            await engine.binding("greet").create(params={"name": "Ada"}, id=sys.argv[2])

    asyncio.run(main())
''')


def app(url: str, **options: Any) -> Engine:
    engine = Engine(url, **options)

    @engine.workflow("greet")
    async def greet(event: Event, step: Step) -> str:
        name = await step.do("lookup", lambda: event.payload["name"])
        await step.sleep("cool off", 0)
        return f"hello {name}"
    return engine


async def test_a_short_script_strands_nothing_and_a_later_worker_starts_at_once(
        db_url: str) -> None:
    ids = [f"short-{n}" for n in range(4)]
    for instance_id in ids:
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", SCRIPT, db_url, instance_id], cwd=REPO,
            capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        [(status, owner)] = query(db_url, "SELECT status, lease_owner FROM instances"
                                          f" WHERE id = '{instance_id}'")
        assert owner is None, f"{instance_id} is still claimed ({status}) by {owner}"
        assert status != "running"
    # The script's lease was ten minutes: only a hand-back lets this worker start now.
    async with app(db_url, lease_seconds=600) as worker:
        for instance_id in ids:
            inst = await worker.get_instance(instance_id)
            st = await inst.wait(timeout=60)
            assert (st.status, st.output) == ("complete", "hello Ada")


async def test_closing_mid_run_hands_the_claim_back_with_what_it_recorded(
        db_url: str) -> None:
    first = app(db_url, lease_seconds=600)
    async with first:
        inst = await first.binding("greet").create(params={"name": "Grace"}, id="mid")
        await eventually(lambda: _status(db_url, "mid") != "queued", timeout=30,
                         what="the run to be claimed")
    [(status, owner)] = query(db_url, "SELECT status, lease_owner FROM instances"
                                      " WHERE id = 'mid'")
    assert owner is None and status in ("queued", "complete"), (status, owner)
    async with app(db_url, lease_seconds=600) as second:
        inst = await second.get_instance("mid")
        assert (await inst.wait(timeout=60)).output == "hello Grace"


def _status(db: str, instance_id: str) -> str:
    [(status,)] = query(db, f"SELECT status FROM instances WHERE id = '{instance_id}'")
    return str(status)


async def test_an_instance_whose_holder_lease_expired_is_not_shown_running(
        db_url: str) -> None:
    import time

    async with app(db_url, run_scheduler=False) as client:
        inst = await client.binding("greet").create(params={"name": "Ada"}, id="orphan")
        # A holder that claimed it and then died: its lease ran out a second ago.
        [row] = await client.store.claim_due_instances(
            owner="gone:1", workflows=["greet"], now=client.clock.now(),
            lease_now=time.time(), lease_until=time.time() - 1, limit=1)
        assert row.status == "running"
        st = await inst.status()
        assert st.status == "queued"
        assert st.note is not None and "gone:1" in st.note and "stopped renewing" in st.note
        [listed] = await client.list_instances()
        assert (listed.status, listed.note) == ("queued", st.note)
    async with app(db_url) as worker:  # and the next worker does take it over
        assert (await (await worker.get_instance("orphan")).wait(timeout=60)).status == (
            "complete")


async def test_a_run_whose_lease_is_taken_over_is_cancelled_by_the_renewal(
        db_url: str) -> None:
    """Renewal learns which leases were lost and stops those runs at once."""
    import asyncio


    started, finished = asyncio.Event(), []
    engine = Engine(db_url, lease_seconds=1.5)

    @engine.workflow("long")
    async def long(event: Event, step: Step) -> str:
        async def body() -> str:
            started.set()
            await asyncio.Event().wait()  # until cancelled
            return "never"
        value = await step.do("long", body)
        finished.append(value)
        return str(value)

    async with engine:
        await engine.binding("long").create(id="stolen")
        await asyncio.wait_for(started.wait(), 60)
        # Another holder takes the instance over, as if this one's lease had run out.
        await engine.store.claim_due_instances(
            owner="thief", workflows=["long"], now=engine.clock.now() + 1,
            lease_now=1e12, lease_until=2e12, limit=1)
        await eventually(lambda: "stolen" not in engine._running, timeout=60,
                         what="the renewal to cancel the run")
        assert finished == []
