"""The store operations quotas rely on, against every backend: kv writes bounded in
their own transaction (also under concurrent writers), usage counts in UTF-8 bytes,
instance counts per scope, and current fences."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentflow.store import InstanceChange, NewInstance, Store, open_store


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
    else:
        url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/q.db"
    s = open_store(url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_kv_set_within_refuses_past_keys_or_bytes_and_writes_nothing(
        store: Store) -> None:
    assert await store.kv_set_within("s", "a", '"é"', 1.0, max_keys=2, max_bytes=100) is None
    assert await store.kv_usage("s") == (1, 1 + 4)  # key "a" + '"é"' (é is 2 bytes)
    assert await store.kv_set_within("s", "b", "1", 1.0, max_keys=2, max_bytes=100) is None
    assert await store.kv_set_within("s", "c", "1", 1.0, max_keys=2, max_bytes=100) == (
        3, 9)
    assert await store.kv_get("s", "c") is None
    # Overwriting counts the new size in place of the old one.
    assert await store.kv_set_within("s", "a", "x" * 98, 1.0, max_keys=2,
                                     max_bytes=100) == (2, 1 + 98 + 2)
    assert await store.kv_get("s", "a") == '"é"'
    assert await store.kv_set_within("s", "a", "x" * 90, 1.0, max_keys=2,
                                     max_bytes=100) is None
    assert await store.kv_usage("s") == (2, 1 + 90 + 2)
    assert await store.kv_usage("other") == (0, 0)


async def test_concurrent_kv_writers_cannot_pass_the_quota_together(store: Store) -> None:
    results = await asyncio.gather(*(
        store.kv_set_within("race", f"k{i}", "1", 1.0, max_keys=5, max_bytes=10_000)
        for i in range(20)))
    assert sum(r is None for r in results) == 5
    assert (await store.kv_usage("race"))[0] == 5


async def test_count_instances_and_fences(store: Store) -> None:
    await store.create_instances([NewInstance(f"i{n}", "w", "1", 1.0, "agent")
                                  for n in range(3)] + [NewInstance("x", "w", "1", 1.0, "b")])
    assert await store.count_instances(scope="agent") == 3
    assert await store.count_instances(scope="agent", statuses=["queued"]) == 3
    assert await store.count_instances(scope="agent", statuses=["complete"]) == 0
    before = await store.get_fences(["i0", "i1", "missing"])
    assert set(before) == {"i0", "i1"}
    await store.transition("i0", lambda row: InstanceChange(at=2.0, status="terminated",
                                                            bump_fence=True))
    after = await store.get_fences(["i0", "i1"])
    assert after["i0"] != before["i0"] and after["i1"] == before["i1"]
