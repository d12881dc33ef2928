"""The console's own records in the database: one signing secret however many
processes start at once, and used-link records that go away once their link expired."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from agentflow.console._data import CONSOLE_SCOPE, stored_secret
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
