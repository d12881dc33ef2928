"""The store contract of `agentflow.store._base`, run against every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentflow.store import (
    InstanceChange,
    JournalRow,
    NewInstance,
    RunCommit,
    RunFinish,
    SQLiteStore,
    Store,
    open_store,
)


def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/contract.db"


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(store_url(request, tmp_path))
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def row(seq: int, name: str = "s") -> JournalRow:
    return JournalRow(seq, name, 1, "do", "ok", 1, 1.0, result="1", finished_at=1.0)


async def claim(store: Store, owner: str, *, now: float = 10.0, lease_now: float = 0.0,
                limit: int = 10) -> list[str]:
    rows = await store.claim_due_instances(owner=owner, workflows=["w"], now=now,
                                           lease_now=lease_now, lease_until=lease_now + 5,
                                           limit=limit)
    return [r.id for r in rows]


async def test_create_skips_existing_ids(store: Store) -> None:
    assert await store.create_instances([NewInstance("a", "w", "1", 1.0),
                                         NewInstance("b", "w", "2", 1.0)]) == ["a", "b"]
    assert await store.create_instances([NewInstance("a", "w", "9", 1.0),
                                         NewInstance("c", "w", "3", 1.0)]) == ["c"]
    got = await store.get_instance("a")
    assert got is not None
    assert got.payload == "1"
    assert got.status == "queued"


async def test_each_due_instance_is_claimed_once_with_a_new_fence(store: Store) -> None:
    await store.create_instances([NewInstance(f"i{n}", "w", "null", 1.0) for n in range(5)])
    assert await store.create_instances([NewInstance("later", "w", "null", 100.0)])
    first = await claim(store, "A", limit=3)
    second = await claim(store, "B")
    assert len(first) == 3
    assert sorted(first + second) == [f"i{n}" for n in range(5)]  # "later" is not due
    inst = await store.get_instance(first[0])
    assert inst is not None
    assert (inst.status, inst.lease_owner, inst.fence) == ("running", "A", 1)
    assert await claim(store, "C") == []  # all leased
    assert sorted(await claim(store, "C", lease_now=6.0)) == sorted(first + second)


async def test_a_holder_whose_lease_expired_cannot_commit(store: Store) -> None:
    await store.create_instances([NewInstance("x", "w", "null", 1.0)])
    assert await claim(store, "A") == ["x"]
    a = await store.get_instance("x")
    assert a is not None
    assert await claim(store, "B", lease_now=100.0) == ["x"]  # A's lease ran out
    late = await store.commit(RunCommit("x", a.fence, [row(1)],
                                        finish=RunFinish("complete", at=2.0, output="1")))
    assert not late.ok
    assert await store.load_journal("x") == []
    b = await store.get_instance("x")
    assert b is not None
    assert (b.status, b.lease_owner) == ("running", "B")
    ok = await store.commit(RunCommit("x", b.fence, [row(1)]))
    assert ok.ok
    assert [r.seq for r in await store.load_journal("x")] == [1]


async def test_group_commit_applies_each_commit_or_none_of_it(store: Store) -> None:
    await store.create_instances([NewInstance(i, "w", "null", 1.0) for i in "abc"])
    await claim(store, "A")
    fences = {i: (await store.get_instance(i)).fence for i in "abc"}  # type: ignore[union-attr]
    import asyncio
    results = await asyncio.gather(
        store.commit(RunCommit("a", fences["a"], [row(1), row(2, "t")])),
        store.commit(RunCommit("b", fences["b"] + 7, [row(1)])),  # stale fence
        store.commit(RunCommit("c", fences["c"], [row(1)],
                               finish=RunFinish("complete", at=3.0, output='"done"'))))
    assert [r.ok for r in results] == [True, False, True]
    assert len(await store.load_journal("a")) == 2
    assert await store.load_journal("b") == []
    c = await store.get_instance("c")
    assert c is not None
    assert (c.status, c.output, c.lease_owner, c.due_at) == ("complete", '"done"', None, None)


async def test_commits_racing_close_land_and_later_ones_are_refused(store: Store) -> None:
    import asyncio
    await store.create_instances([NewInstance(f"r{k}", "w", "null", 1.0) for k in range(20)])
    assert len(await claim(store, "A", limit=50)) == 20
    fences = {f"r{k}": (await store.get_instance(f"r{k}")).fence  # type: ignore[union-attr]
              for k in range(20)}
    commits = [asyncio.create_task(store.commit(RunCommit(i, f, [row(1)])))
               for i, f in fences.items()]
    await asyncio.sleep(0)  # the commits are queued, none written yet
    await store.close()
    assert all(t.done() and t.result().ok for t in commits)  # close waited for every one
    with pytest.raises(RuntimeError, match="closed"):
        await store.commit(RunCommit("r0", fences["r0"], [row(2)]))
    await store.open()
    if store.url != "memory://":  # a closed memory store has forgotten everything
        for i in fences:
            assert [r.seq for r in await store.load_journal(i)] == [1]


async def test_suspend_with_a_buffered_event_makes_the_instance_due(store: Store) -> None:
    await store.create_instances([NewInstance("e", "w", "null", 1.0)])
    await claim(store, "A")
    e = await store.get_instance("e")
    assert e is not None
    # The event lands while the run is deciding to wait for it.
    assert await store.add_event("e", "go", "1", 2.0, lambda r: None)
    await store.commit(RunCommit("e", e.fence, finish=RunFinish(
        "waiting", at=3.0, due_at=1000.0, waiting_on='{"kind":"event"}', wake_types=("go",))))
    after = await store.get_instance("e")
    assert after is not None
    assert (after.status, after.due_at) == ("queued", 3.0)
    events = await store.pending_events("e", "go")
    assert [ev.payload for ev in events] == ["1"]


async def test_transition_is_atomic_and_can_refuse(store: Store) -> None:
    await store.create_instances([NewInstance("t", "w", "null", 1.0)])

    def refuse(r: object) -> InstanceChange:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        await store.transition("t", refuse)
    changed = await store.transition("t", lambda r: InstanceChange(
        at=5.0, status="paused", due_at=None, bump_fence=True))
    assert changed is not None
    assert (changed.status, changed.due_at, changed.fence, changed.updated_at) == (
        "paused", None, 1, 5.0)
    assert await store.transition("missing", lambda r: None) is None


async def test_dropping_steps_drops_their_events_and_every_unconsumed_one(store: Store) -> None:
    await store.create_instances([NewInstance("d", "w", "null", 1.0)])
    await claim(store, "A")
    d = await store.get_instance("d")
    assert d is not None
    for n, type_ in enumerate(["kept", "dropped", "unread"], start=1):
        assert await store.add_event("d", type_, str(n), 2.0, lambda r: None)
    kept, dropped = [(await store.pending_events("d", t))[0].id for t in ("kept", "dropped")]
    assert (await store.commit(RunCommit("d", d.fence, [row(1), row(2)],
                                         consumed_events=[(kept, 1), (dropped, 2)]))).ok
    await store.transition("d", lambda r: InstanceChange(
        at=3.0, status="queued", due_at=3.0, bump_fence=True, clear_lease=True,
        delete_steps_from=2))
    assert [r.seq for r in await store.load_journal("d")] == [1]
    # Sent after the restart: meant for the new run, and kept.
    assert await store.add_event("d", "unread", "4", 4.0, lambda r: None)
    assert [e.payload for e in await store.pending_events("d", "unread")] == ["4"]
    assert await store.pending_events("d", "dropped") == []


async def test_kv_list_prefix_is_case_sensitive(store: Store) -> None:
    for key in ("apple", "Apricot", "a_b", "a%c"):
        await store.kv_set("s", key, "1", 1.0)
    assert await store.kv_list("s", "A") == ["Apricot"]
    assert await store.kv_list("s", "a_") == ["a_b"]
    assert await store.kv_list("s", "a%") == ["a%c"]
    assert await store.kv_list("s", "") == ["Apricot", "a%c", "a_b", "apple"]


async def test_kv_add_writes_only_an_absent_key(store: Store) -> None:
    assert await store.kv_add("s", "k", "first", 1.0)
    assert not await store.kv_add("s", "k", "second", 2.0)
    assert await store.kv_get("s", "k") == "first"
    assert await store.kv_add("t", "k", "other scope", 2.0)
    await store.kv_delete("s", "k")
    assert await store.kv_add("s", "k", "again", 3.0)
    assert await store.kv_get("s", "k") == "again"


async def test_release_hands_claims_back(store: Store) -> None:
    await store.create_instances([NewInstance("r", "w", "null", 1.0)])
    await claim(store, "A")
    await store.release_leases(owner="A", instance_ids=["r"], now=7.0)
    r = await store.get_instance("r")
    assert r is not None
    assert (r.status, r.lease_owner, r.due_at, r.fence) == ("queued", None, 7.0, 2)
    assert await claim(store, "B") == ["r"]


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that several stores (as in several processes) can open at once."""
    return store_url(request, tmp_path)


async def test_concurrent_claimers_split_the_work_without_overlap(shared_url: str) -> None:
    stores = [open_store(shared_url) for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        await stores[0].create_instances([NewInstance(f"i{n:03}", "w", "null", 1.0)
                                          for n in range(200)])

        async def claim_all(s: Store, owner: str) -> list[str]:
            got: list[str] = []
            while batch := await claim(s, owner, limit=7):
                got += batch
            return got
        import asyncio
        claimed = await asyncio.gather(*(claim_all(s, f"W{k}") for k, s in
                                         enumerate(stores)))
        every = [i for batch in claimed for i in batch]
        assert sorted(every) == [f"i{n:03}" for n in range(200)]  # each exactly once
        for k, batch in enumerate(claimed):
            for i in batch[:3]:
                row = await stores[0].get_instance(i)
                assert row is not None
                assert (row.lease_owner, row.fence) == (f"W{k}", 1)
    finally:
        for s in stores:
            await s.close()


async def test_wait_for_change_returns_by_its_timeout(store: Store) -> None:
    import asyncio
    await asyncio.wait_for(store.wait_for_change(0.05), 10)


async def test_contention_on_the_file_is_retried_not_raised(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    import asyncio
    import sqlite3

    from agentflow.store import sqlite as sqlite_store
    from tests.conftest import eventually

    busy_seen: list[BaseException] = []
    real_is_busy = sqlite_store._is_busy

    def counting(exc: BaseException) -> bool:
        busy = real_is_busy(exc)
        if busy:
            busy_seen.append(exc)
        return busy

    monkeypatch.setattr(sqlite_store, "_is_busy", counting)
    path = tmp_path / "busy.db"
    store = SQLiteStore(str(path), busy_timeout=0.05)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        create = asyncio.create_task(store.create_instances([NewInstance("z", "w", "1", 1.0)]))
        await eventually(lambda: len(busy_seen) >= 2, what="SQLITE_BUSY to be retried")
        assert not create.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(create, 10) == ["z"]
    finally:
        other.close()
        await store.close()


async def _claimed_with_event(store: Store, instance_id: str) -> tuple[int, int]:
    """An instance claimed by "A" with one buffered event: (its fence, the event id)."""
    await store.create_instances([NewInstance(instance_id, "w", "null", 1.0)])
    await claim(store, "A")
    got = await store.get_instance(instance_id)
    assert got is not None
    assert await store.add_event(instance_id, "go", '"e1"', 2.0, lambda r: None)
    [event] = await store.pending_events(instance_id, "go")
    return got.fence, event.id


def wait_row(seq: int) -> JournalRow:
    return JournalRow(seq, f"w{seq}", 1, "event", "ok", 1, 1.0, result="1", finished_at=1.0)


async def test_two_waits_of_one_run_cannot_consume_one_event(store: Store) -> None:
    """Two waits of a gather commit at once, both with the same event: one wins, the
    other writes nothing and learns which event was taken."""
    import asyncio
    fence, event = await _claimed_with_event(store, "g")
    results = await asyncio.gather(
        store.commit(RunCommit("g", fence, [wait_row(1)], consumed_events=[(event, 1)])),
        store.commit(RunCommit("g", fence, [wait_row(2)], consumed_events=[(event, 2)])))
    assert sorted(r.ok for r in results) == [False, True]
    [refused] = [r for r in results if not r.ok]
    assert refused.taken == (event,)
    [kept] = await store.load_journal("g")
    winner = 1 if results[0].ok else 2
    assert kept.seq == winner
    assert await store.pending_events("g", "go") == []
    # The same commit written again (as after a lost COMMIT) is still accepted.
    again = await store.commit(RunCommit("g", fence, [wait_row(winner)],
                                         consumed_events=[(event, winner)]))
    assert again.ok


async def test_an_event_consumed_through_one_process_is_refused_to_another(
        shared_url: str) -> None:
    import asyncio
    first, second = open_store(shared_url), open_store(shared_url)
    await first.open()
    await second.open()
    try:
        fence, event = await _claimed_with_event(first, "p")
        for attempt in range(5):  # racing each time, then one after the other
            seqs = (2 * attempt + 1, 2 * attempt + 2)
            results = await asyncio.gather(*(
                s.commit(RunCommit("p", fence, [wait_row(seq)], consumed_events=[(event, seq)]))
                for s, seq in zip((first, second), seqs, strict=True)))
            assert sum(r.ok for r in results) == (1 if attempt == 0 else 0)
        assert len(await first.load_journal("p")) == 1
    finally:
        await first.close()
        await second.close()


async def test_leases_on_the_database_clock_and_renewals_report_what_they_kept(
        store: Store) -> None:
    await store.create_instances([NewInstance("l1", "w", "null", 1.0),
                                  NewInstance("l2", "w", "null", 1.0)])
    # No wall times from the caller: the database's clock starts and judges the lease.
    claimed = await store.claim_due_instances(owner="A", workflows=["w"], now=10.0,
                                              lease_seconds=60.0, limit=10)
    assert sorted(r.id for r in claimed) == ["l1", "l2"]
    assert await store.claim_due_instances(owner="B", workflows=["w"], now=10.0,
                                           lease_seconds=60.0, limit=10) == []
    assert await store.next_due_at(["w"]) is None  # both leased
    # B takes l2 over as if A's lease had run out; A's renewal keeps only l1.
    assert [r.id for r in await store.claim_due_instances(
        owner="B", workflows=["w"], now=10.0, lease_now=1e12, lease_until=2e12,
        limit=1)] in (["l1"], ["l2"])
    taken = "l1" if (await store.get_instance("l1")).lease_owner == "B" else "l2"  # type: ignore[union-attr]
    kept = await store.renew_leases(owner="A", instance_ids=["l1", "l2"], lease_seconds=60.0)
    assert kept == [i for i in ("l1", "l2") if i != taken]
