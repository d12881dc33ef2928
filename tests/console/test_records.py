"""The console's own records in the database: one signing secret however many
processes start at once, and used-link records that go away once their link expired."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from agentflow.console._data import (
    CONSOLE_SCOPE,
    USED_LINK_PREFIX,
    claim_link,
    link_used,
    prune_used_links,
    stored_secret,
)
from agentflow.store import Store, open_store


async def _race_for_the_secret(url: str, hold_writes: object) -> None:
    stores = [open_store(url) for _ in range(6)]
    for store in stores:
        await store.open()
    try:
        with hold_writes:  # type: ignore[attr-defined]
            # Every store reads "no secret yet", then waits for the write lock: the
            # moment two processes starting at once race for it.
            tasks = [asyncio.ensure_future(stored_secret(s, 1.0)) for s in stores]
            done, _ = await asyncio.wait(tasks, timeout=0.5)
            assert not done
        secrets_seen = await asyncio.gather(*tasks)
        kept = await stores[0].kv_get(CONSOLE_SCOPE, "secret")
        assert kept is not None
        assert {s.hex() for s in secrets_seen} == {kept}
    finally:
        for store in stores:
            await store.close()


class _SQLiteWriteLock:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, *exc: object) -> None:
        self.conn.execute("ROLLBACK")
        self.conn.close()


async def test_stores_starting_at_once_share_one_secret_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    first: Store = open_store(url)
    await first.open()  # the schema exists; the secret does not
    await first.close()
    await _race_for_the_secret(url, _SQLiteWriteLock(tmp_path / "s.db"))


class _PostgresWriteLock:
    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url)

    def __enter__(self) -> None:
        self.conn.execute("LOCK TABLE kv IN EXCLUSIVE MODE")  # reads still go through

    def __exit__(self, *exc: object) -> None:
        self.conn.rollback()
        self.conn.close()


async def test_stores_starting_at_once_share_one_secret_postgres(postgres_url: str) -> None:
    first: Store = open_store(postgres_url)
    await first.open()
    await first.close()
    await _race_for_the_secret(postgres_url, _PostgresWriteLock(postgres_url))


async def test_expired_used_link_records_go_and_a_used_link_stays_used(tmp_path: Path
                                                                       ) -> None:
    """A used link's record lasts until the link expires: before, the link cannot be
    used again (pruning keeps it); after, pruning deletes it (the link is refused for
    being expired anyway), so used links do not pile up for ever."""
    store = open_store(f"sqlite:///{tmp_path}/l.db")
    await store.open()
    try:
        now = 1_800_000_000.0
        assert await claim_link(store, "old", now - 10, "i1", now - 100)
        assert await claim_link(store, "fresh", now + 3600, "i2", now)
        assert not await claim_link(store, "fresh", now + 3600, "i2", now)  # used once
        assert await prune_used_links(store, now) == 1
        keys = await store.kv_list(CONSOLE_SCOPE, USED_LINK_PREFIX)
        assert len(keys) == 1 and keys[0].endswith("/fresh")
        assert not await link_used(store, "old", now - 10)
        assert await link_used(store, "fresh", now + 3600)
        assert not await claim_link(store, "fresh", now + 3600, "i2", now)  # still used
        # A record written by an earlier version (no expiry in its key) is honoured.
        await store.kv_set(CONSOLE_SCOPE, "link/legacy", '{"instance_id": "i3"}', now)
        assert await link_used(store, "legacy", now + 60)
        assert not await claim_link(store, "legacy", now + 60, "i3", now)
        # Many expired records: all go, in batches.
        for n in range(450):
            assert await claim_link(store, f"n{n}", now - 1 - n, "i", now - 500)
        assert await prune_used_links(store, now, batch=100) == 450
        assert len(await store.kv_list(CONSOLE_SCOPE, USED_LINK_PREFIX)) == 1
    finally:
        await store.close()
