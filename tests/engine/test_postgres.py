"""What only the PostgreSQL store does: LISTEN/NOTIFY wake-ups, retries of transient
errors, migrations under many starters. The shared contract is in test_store_contract.py."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from agentflow import Engine, Event, Step
from agentflow.store import (
    InstanceChange,
    JournalRow,
    NewInstance,
    RunCommit,
    Store,
    open_store,
)
from agentflow.store import _migrations as sqlite_migrations
from tests.conftest import POSTGRES_ENV, eventually

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
async def stores(postgres_url: str) -> AsyncIterator[Callable[[], Any]]:
    """Open as many stores on one fresh schema as a test asks for (as if in several
    processes); all are closed at the end."""
    opened: list[Store] = []

    async def open_one() -> Store:
        s = open_store(postgres_url)
        await s.open()
        opened.append(s)
        return s
    try:
        yield open_one
    finally:
        for s in opened:
            await s.close()


async def returns_within(awaitable: Any, seconds: float) -> float:
    started = time.monotonic()
    await asyncio.wait_for(awaitable, seconds)
    return time.monotonic() - started


async def test_an_idle_store_wakes_when_another_makes_work_due(stores: Any) -> None:
    idle, other = await stores(), await stores()
    assert idle.pushes_changes
    await idle.wait_for_change(0.01)  # drain what opening may have flagged

    waiting = asyncio.create_task(idle.wait_for_change(30))
    await asyncio.sleep(0)
    await other.create_instances([NewInstance("n1", "w", "null", 1.0)])
    assert await returns_within(waiting, 10) < 10  # not the 30 s timeout

    # Each kind of write that makes work due for someone else wakes it too.
    await other.claim_due_instances(owner="B", workflows=["w"], now=10.0,
                                            lease_now=0.0, lease_until=5.0, limit=1)
    await idle.wait_for_change(0.01)
    waiting = asyncio.create_task(idle.wait_for_change(30))
    await other.release_leases(owner="B", instance_ids=["n1"], now=11.0)
    await returns_within(waiting, 10)

    waiting = asyncio.create_task(idle.wait_for_change(30))
    assert await other.add_event("n1", "go", "1", 12.0,
                                 lambda r: InstanceChange(at=12.0, due_at=12.0))
    await returns_within(waiting, 10)


async def test_step_commits_notify_nobody(stores: Any) -> None:
    """Under load the channel stays quiet: adding steps wakes no idle worker."""
    idle, busy = await stores(), await stores()
    await busy.create_instances([NewInstance("q", "w", "null", 1.0)])
    [row] = await busy.claim_due_instances(owner="B", workflows=["w"], now=10.0,
                                           lease_now=0.0, lease_until=50.0, limit=1)
    await idle.wait_for_change(0.01)
    for seq in range(1, 6):
        result = await busy.commit(RunCommit("q", row.fence, [JournalRow(
            seq, "s", seq, "do", "ok", 1, 1.0, result="1", finished_at=1.0)]))
        assert result.ok
    started = time.monotonic()
    await idle.wait_for_change(0.3)
    assert time.monotonic() - started >= 0.29  # it ran out its timeout: no notification


async def test_a_worker_with_no_poll_runs_new_work_and_events_at_once(postgres_url: str
                                                                      ) -> None:
    """The worker polls once a minute here, so only a notification can wake it in time."""
    def app(**options: Any) -> Engine:
        engine = Engine(postgres_url, **options)

        @engine.workflow("approve")
        async def approve(event: Event, step: Step) -> Any:
            ev = await step.wait_for_event("ok", type="ok", timeout="1 hour")
            return ev["payload"]
        return engine

    worker = app(poll_interval=60.0)
    assert worker.poll_interval == 60.0
    waiting: list[bool] = []
    store = worker._store
    wait_for_change = store.wait_for_change

    async def watched(timeout: float) -> None:
        waiting.append(True)
        try:
            await wait_for_change(timeout)
        finally:
            waiting.pop()
    store.wait_for_change = watched  # type: ignore[method-assign]

    async def scheduler_idle() -> None:  # parked in its (one minute) idle wait
        await eventually(lambda: waiting, timeout=10, what="the worker to go idle")

    async with worker, app(run_scheduler=False) as client:
        await scheduler_idle()
        inst = await client.binding("approve").create(id="a1")
        await eventually(lambda: _status_is(inst, "waiting"), timeout=10,
                         what="the worker to run the new instance")
        await scheduler_idle()
        await inst.send_event("ok", {"yes": True})
        await eventually(lambda: _status_is(inst, "complete"), timeout=10,
                         what="the worker to run the woken instance")
        assert (await inst.status()).output == {"yes": True}


async def _status_is(inst: Any, status: str) -> bool:
    return bool((await inst.status()).status == status)


def test_default_poll_is_long_on_a_store_that_pushes_changes(postgres_url: str) -> None:
    assert Engine(postgres_url, lease_seconds=30).poll_interval == 5.0
    assert Engine(postgres_url, lease_seconds=2).poll_interval == 1.0
    assert Engine("memory://").poll_interval == 0.2


async def test_lost_connections_are_retried_and_the_listener_reconnects(
        stores: Any, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from agentflow.store import postgres

    seen: list[BaseException] = []
    real = postgres._is_transient

    def counting(exc: BaseException) -> bool:
        transient = real(exc)
        if transient:
            seen.append(exc)
        return transient

    monkeypatch.setattr(postgres, "_is_transient", counting)
    store = await stores()
    await store.create_instances([NewInstance("k", "w", "null", 1.0)])
    mine = parse_qs(urlsplit(postgres_url).query)["application_name"][0]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        killed = admin.execute(  # this test's connections carry its schema's name
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()", (mine,)).fetchone()
    assert killed is not None and killed[0] >= 2  # the pool's and the listener's
    got = await store.get_instance("k")  # on a dead pooled connection: retried
    assert got is not None and got.id == "k"
    assert await store.create_instances([NewInstance("k2", "w", "null", 1.0)]) == ["k2"]
    assert seen, "a lost connection must have been seen and retried"

    # The listener came back: a change made elsewhere still wakes this store.
    other = await stores()
    await eventually(lambda: store._listener is not None and not store._listener.closed,
                     what="the listener to reconnect")
    await store.wait_for_change(0.01)
    waiting = asyncio.create_task(store.wait_for_change(30))
    await other.create_instances([NewInstance("k3", "w", "null", 1.0)])
    await returns_within(waiting, 10)


async def test_a_deadlock_retries_the_whole_batch_once(stores: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from psycopg import errors

    store = await stores()
    await store.create_instances([NewInstance("d", "w", "null", 1.0)])
    [row] = await store.claim_due_instances(owner="A", workflows=["w"], now=10.0,
                                            lease_now=0.0, lease_until=50.0, limit=1)
    real = store._write_batch
    calls: list[int] = []

    async def deadlock_once(conn: Any, commits: Any) -> Any:
        calls.append(1)
        result = await real(conn, commits)  # written, then rolled back by the error
        if len(calls) == 1:
            raise errors.DeadlockDetected("deadlock detected (injected)")
        return result

    monkeypatch.setattr(store, "_write_batch", deadlock_once)
    done = await store.commit(RunCommit("d", row.fence, [JournalRow(
        1, "s", 1, "do", "ok", 1, 1.0, result="1", finished_at=1.0)]))
    assert done.ok
    assert len(calls) == 2
    assert [r.seq for r in await store.load_journal("d")] == [1]


async def test_many_workers_starting_at_once_migrate_once(postgres_url: str) -> None:
    from agentflow.store._pg_migrations import MIGRATIONS, SCHEMA_VERSION

    # The PostgreSQL schema mirrors SQLite's, version for version.
    assert [n for n, _ in MIGRATIONS] == [n for n, _ in sqlite_migrations.MIGRATIONS]
    many = [open_store(postgres_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in many))
    try:
        assert {await s.schema_version() for s in many} == {SCHEMA_VERSION}
        await many[0].create_instances([NewInstance("keep", "w", "null", 1.0)])
    finally:
        for s in many:
            await s.close()
    again = open_store(postgres_url)
    await again.open()  # migrations are not re-applied; rows stay
    try:
        assert [r.id for r in await again.list_instances()] == ["keep"]
    finally:
        await again.close()


def test_in_ci_a_missing_server_fails_the_postgres_tests(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != POSTGRES_ENV}
    env["PYTHONPATH"] = str(REPO)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "tests/engine/test_store_contract.py::test_release_hands_claims_back"]
    in_ci = subprocess.run(args, cwd=REPO, env={**env, "CI": "true"}, capture_output=True,
                           text=True, timeout=120)
    assert in_ci.returncode != 0
    assert "must run" in in_ci.stdout and "1 error" in in_ci.stdout
    env.pop("CI", None)
    local = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=120)
    assert local.returncode == 0
    assert "skipped" in local.stdout and POSTGRES_ENV in local.stdout


async def test_a_store_can_be_closed_and_opened_again(postgres_url: str) -> None:
    store = open_store(postgres_url)
    for n in range(2):
        await store.open()
        try:
            await store.create_instances([NewInstance(f"r{n}", "w", "null", 1.0)])
            assert len(await store.list_instances()) == n + 1
        finally:
            await store.close()


def test_the_worker_banner_masks_a_password() -> None:
    from agentflow.cli._worker import without_password

    assert without_password("postgresql://af:s3cret@db:5432/x?sslmode=require") == (
        "postgresql://af:***@db:5432/x?sslmode=require")
    assert without_password("sqlite:///agentflow.db") == "sqlite:///agentflow.db"


async def test_an_unreachable_server_fails_open_at_once_saying_why() -> None:
    import psycopg

    store = open_store("postgresql://nobody@127.0.0.1:1/none")
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError, match="refused"):
        await store.open()
    assert time.monotonic() - started < 10
    await store.close()  # nothing was opened: a no-op


async def test_a_schema_from_a_newer_agentflow_is_refused(postgres_url: str) -> None:
    import psycopg

    from agentflow import InvalidArgumentError
    from agentflow.store._pg_migrations import SCHEMA_VERSION

    store = open_store(postgres_url)
    await store.open()
    await store.close()
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute("UPDATE agentflow_schema SET version = %s", (SCHEMA_VERSION + 1,))
    newer = open_store(postgres_url)
    with pytest.raises(InvalidArgumentError, match="newer agentflow"):
        await newer.open()
    await newer.close()
