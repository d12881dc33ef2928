"""What one durable step transaction costs, by how it reaches SQLite: the floors that
bound the sequential (one workflow) case, and what each store change would win.

usage: python bench/hops_floor.py [--n 2000] [--rounds 3]

Each variant runs the statements agentflow's writer runs per step, on agentflow's own
schema (WAL, synchronous=FULL, fresh file each time):
    BEGIN IMMEDIATE; SELECT id, fence, status FROM instances WHERE id IN (?);
    INSERT OR REPLACE INTO steps (...) VALUES (...); COMMIT
and prints one JSON line per variant with the median of --rounds (us per transaction):

- ``sync``: plain sqlite3 in a loop, no asyncio: the physical floor.
- ``aiosqlite_4hops``: the four statements as four awaited aiosqlite calls (the
  store's shape today, without tenacity, the lock and the context manager).
- ``aiosqlite_4hops_tenacity``: the same inside ``AsyncRetrying`` + ``asyncio.Lock`` +
  an ``asynccontextmanager`` per transaction, as ``SQLiteStore._in_write_txn`` does.
- ``aiosqlite_1hop``: one awaited call that runs the whole transaction in aiosqlite's
  worker thread (``conn._execute(fn)``).
- ``executor_1hop``: the whole transaction in a dedicated one-thread executor
  (``loop.run_in_executor``) on a plain sqlite3 connection.
- ``inline_in_loop``: the whole transaction run synchronously on the event-loop thread
  (blocks the loop for ~0.3 ms; shown as the floor for an asyncio store, not a proposal
  for the concurrent case).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiosqlite
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_random_exponential

from agentflow.store._migrations import MIGRATIONS

STEP_SQL = ("INSERT OR REPLACE INTO steps (instance_id, seq, name, n, kind, status, attempts,"
            " started_at, result, error, finished_at, wake_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
FENCE_SQL = "SELECT id, fence, status FROM instances WHERE id IN (?)"
IID = "00000000-0000-4000-8000-000000000000"


def make_db(root: str, name: str) -> str:
    path = os.path.join(root, name + ".db")
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("BEGIN")
    for _, statements in MIGRATIONS:
        for s in statements:
            c.execute(s)
    c.execute("INSERT INTO instances (id, workflow, status, payload, created_at, updated_at,"
              " fence) VALUES (?, 'plan', 'running', '{}', 0, 0, 1)", (IID,))
    c.execute("COMMIT")
    c.close()
    return path


def row(i: int) -> tuple[Any, ...]:
    now = time.time()
    return (IID, i, "add", i, "do", "ok", 1, now, str(i), None, now, None)


def txn_sync(c: sqlite3.Connection, i: int) -> None:
    c.execute("BEGIN IMMEDIATE")
    c.execute(FENCE_SQL, (IID,)).fetchall()
    c.executemany(STEP_SQL, [row(i)])
    c.execute("COMMIT")


def connect(path: str) -> sqlite3.Connection:
    c = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    c.execute("PRAGMA synchronous=FULL")
    return c


def v_sync(path: str, n: int) -> float:
    c = connect(path)
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        txn_sync(c, i)
    dt = time.perf_counter() - t0
    c.close()
    return dt


async def aconnect(path: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA synchronous = FULL")
    return conn


async def v_aiosqlite_4hops(path: str, n: int) -> float:
    conn = await aconnect(path)
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        await conn.execute("BEGIN IMMEDIATE")
        await conn.execute_fetchall(FENCE_SQL, (IID,))
        await conn.executemany(STEP_SQL, [row(i)])
        await conn.execute("COMMIT")
    dt = time.perf_counter() - t0
    await conn.close()
    return dt


async def v_aiosqlite_4hops_tenacity(path: str, n: int) -> float:
    conn = await aconnect(path)
    lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def write() -> Any:
        async with lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    def busy(exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)

    t0 = time.perf_counter()
    for i in range(1, n + 1):
        async for attempt in AsyncRetrying(retry=retry_if_exception(busy), reraise=True,
                                           wait=wait_random_exponential(multiplier=0.005,
                                                                        max=0.25),
                                           stop=stop_after_delay(60)):
            with attempt:
                async with write() as c:
                    await c.execute_fetchall(FENCE_SQL, (IID,))
                    await c.executemany(STEP_SQL, [row(i)])
    dt = time.perf_counter() - t0
    await conn.close()
    return dt


async def v_aiosqlite_1hop(path: str, n: int) -> float:
    conn = await aconnect(path)
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        await conn._execute(txn_sync, conn._conn, i)
    dt = time.perf_counter() - t0
    await conn.close()
    return dt


async def v_executor_1hop(path: str, n: int) -> float:
    pool = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    c = await loop.run_in_executor(pool, connect, path)
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        await loop.run_in_executor(pool, txn_sync, c, i)
    dt = time.perf_counter() - t0
    await loop.run_in_executor(pool, c.close)
    pool.shutdown()
    return dt


async def v_inline_in_loop(path: str, n: int) -> float:
    c = connect(path)
    t0 = time.perf_counter()
    for i in range(1, n + 1):
        txn_sync(c, i)
        await asyncio.sleep(0)  # one loop turn per step, as a runner would take
    dt = time.perf_counter() - t0
    c.close()
    return dt


VARIANTS = {
    "sync": lambda p, n: v_sync(p, n),
    "aiosqlite_4hops": lambda p, n: asyncio.run(v_aiosqlite_4hops(p, n)),
    "aiosqlite_4hops_tenacity": lambda p, n: asyncio.run(v_aiosqlite_4hops_tenacity(p, n)),
    "aiosqlite_1hop": lambda p, n: asyncio.run(v_aiosqlite_1hop(p, n)),
    "executor_1hop": lambda p, n: asyncio.run(v_executor_1hop(p, n)),
    "inline_in_loop": lambda p, n: asyncio.run(v_inline_in_loop(p, n)),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    root = tempfile.mkdtemp(prefix="hops-")
    results: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for r in range(a.rounds):  # alternate the variants inside each round
        for name, fn in VARIANTS.items():
            path = make_db(root, f"{name}{r}")
            results[name].append(fn(path, a.n) / a.n * 1e6)
    for name, per in results.items():
        med = statistics.median(per)
        print(json.dumps({"variant": name, "txns": a.n, "us_per_txn": round(med, 1),
                          "txns_per_s": round(1e6 / med, 1),
                          "rounds_us": [round(x, 1) for x in per]}))


if __name__ == "__main__":
    main()
