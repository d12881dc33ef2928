"""Engine benchmarks: agentflow on a fresh SQLite file, every step durable before the next.

usage:
    python bench/bench_engine.py --case conc   [--workflows 200 --steps 10]
    python bench/bench_engine.py --case seq    [--seq-steps 2000]
    python bench/bench_engine.py --case create [--creates 20000 --batch 1000]
    python bench/bench_engine.py --case all

Each case runs on a fresh database file (WAL, synchronous=FULL: the store's own
settings, checked and reported) and prints one JSON line, shaped like the baselines' in
../shared/baselines (``steps_per_s``, ``ms_per_step``), so the side-by-side runner can
set them against DBOS in the same run.

- ``conc``: N workflows x S trivial steps (``x = await step.do("add", lambda: x + 1)``),
  created with one ``create_batch``; wall time from just before the creation to the
  moment every instance is durably ``complete``.
- ``seq``: one workflow of S sequential steps, same measure.
- ``create``: ``create_batch`` on a client-only engine (``run_scheduler=False``, so no
  run competes): durable instance creations per second.

How completion is detected without distorting the figure: the waiter sleeps on the
engine's in-process change broadcast (``engine.changes``: a run ending notifies it) and,
when woken, counts finished rows with one synchronous indexed ``SELECT count(*)`` on a
separate read-only sqlite3 connection (tens of microseconds, no thread hop, no extra work
on the store's reader connection). A timer (``--poll``) is the fallback. So the clock
stops within one event-loop turn of the last finish commit, and the waiter costs about
one small query per finished instance, not one per instance per poll.

``--stats`` wraps the store's batch writer (in this process only, nothing in agentflow
is changed) to report how many durable transactions the case used and their mean size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from typing import Any

from agentflow import Engine

TERMINAL = ("complete", "errored", "terminated")


def fresh_db(root: str, name: str) -> str:
    path = os.path.join(root, f"{name}.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return path


async def synchronous_mode(engine: Engine) -> str:
    """The writer connection's PRAGMA synchronous, as the store set it (2 = FULL)."""
    writer = getattr(engine.store, "_writer", None)
    if writer is None:
        return "unknown"
    value = await writer.run(lambda db: db.execute("PRAGMA synchronous").fetchone()[0])
    return {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(value, str(value))


class BatchStats:
    """Counts the store's durable batch transactions (opt-in, bench-local wrapper)."""

    def __init__(self, engine: Engine) -> None:
        self.batches = 0
        self.commits = 0
        store = engine._store
        inner = getattr(store, "_apply_batch", None)
        if inner is None:
            return

        async def counted(batch: list[Any]) -> None:
            self.batches += 1
            self.commits += len(batch)
            await inner(batch)

        store._apply_batch = counted  # type: ignore[method-assign]

    def report(self) -> dict[str, Any]:
        return {"txns": self.batches, "run_commits": self.commits,
                "mean_commits_per_txn": round(self.commits / self.batches, 2)
                if self.batches else None}


async def wait_all_finished(engine: Engine, path: str, workflow: str, expected: int,
                            poll: float) -> int:
    """Return once `expected` instances of `workflow` are in a terminal status."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    marks = ",".join("?" * len(TERMINAL))
    sql = (f"SELECT id, status IN ({marks}) FROM instances WHERE workflow = ?")
    queries = 0
    try:
        while True:
            with contextlib.ExitStack() as watching:
                # The engine wakes only the waiters of the instances a change touched:
                # watch the unfinished ones (a change between the read and the watch is
                # seen at the next poll).
                queries += 1
                rows = conn.execute(sql, (*TERMINAL, workflow)).fetchall()
                if sum(1 for _id, done in rows if done) >= expected:
                    return queries
                events = [watching.enter_context(engine.changes.watch(i))
                          for i, done in rows if not done]
                waits = [asyncio.ensure_future(e.wait()) for e in events]
                try:
                    await asyncio.wait(waits, timeout=poll,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()
    finally:
        conn.close()


def check_outputs(path: str, workflow: str, expected_output: Any, expected: int) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT status, output FROM instances WHERE workflow = ?",
                            (workflow,)).fetchall()
        steps = conn.execute("SELECT count(*) FROM steps").fetchone()[0]
    finally:
        conn.close()
    bad = [r for r in rows if r[0] != "complete" or json.loads(r[1]) != expected_output]
    if len(rows) != expected or bad:
        raise SystemExit(f"wrong result: {len(rows)} rows, {len(bad)} bad, e.g. {bad[:3]}")
    return steps


async def run_steps(path: str, *, workflows: int, steps: int, poll: float,
                    max_concurrency: int, stats: bool, case: str) -> dict[str, Any]:
    engine = Engine(f"sqlite:///{path}", max_concurrency=max_concurrency)

    @engine.workflow("plan")
    async def plan(event: Any, step: Any) -> int:
        x = 0
        for _ in range(event.payload["steps"]):
            x = await step.do("add", lambda x=x: x + 1)
        return x

    async with engine:
        sync = await synchronous_mode(engine)
        counter = BatchStats(engine) if stats else None
        wf = engine.binding("plan")
        t0 = time.perf_counter()
        await wf.create_batch([{"params": {"steps": steps}} for _ in range(workflows)])
        queries = await wait_all_finished(engine, path, "plan", workflows, poll)
        dt = time.perf_counter() - t0
    journal_rows = check_outputs(path, "plan", steps, workflows)
    total = workflows * steps
    assert journal_rows == total, (journal_rows, total)
    out: dict[str, Any] = {
        "system": "agentflow", "case": case, "workflows": workflows,
        "steps": total, "seconds": round(dt, 4), "steps_per_s": round(total / dt, 1),
        "ms_per_step": round(dt / total * 1e3, 3), "synchronous": sync,
        "max_concurrency": max_concurrency, "waiter_queries": queries}
    if counter is not None:
        out.update(counter.report())
    return out


async def run_create(path: str, *, creates: int, batch: int) -> dict[str, Any]:
    engine = Engine(f"sqlite:///{path}", run_scheduler=False)

    @engine.workflow("plan")
    async def plan(event: Any, step: Any) -> int:  # never runs: no scheduler
        return 0

    async with engine:
        sync = await synchronous_mode(engine)
        wf = engine.binding("plan")
        items = [{"params": {"steps": 10, "i": i}} for i in range(creates)]
        t0 = time.perf_counter()
        made = 0
        for start in range(0, creates, batch):
            made += len(await wf.create_batch(items[start:start + batch]))
        dt = time.perf_counter() - t0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (count,), = conn.execute(
            "SELECT count(*) FROM instances WHERE status = 'queued'").fetchall()
    finally:
        conn.close()
    assert made == creates and count == creates, (made, count, creates)
    return {"system": "agentflow", "case": "create", "instances": creates, "batch": batch,
            "seconds": round(dt, 4), "creations_per_s": round(creates / dt, 1),
            "us_per_creation": round(dt / creates * 1e6, 2), "synchronous": sync}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=["conc", "seq", "create", "all"], default="all")
    p.add_argument("--workflows", type=int, default=200, help="conc: concurrent workflows")
    p.add_argument("--steps", type=int, default=10, help="conc: steps per workflow")
    p.add_argument("--seq-steps", type=int, default=2000, help="seq: steps of the one workflow")
    p.add_argument("--creates", type=int, default=20000, help="create: instances")
    p.add_argument("--batch", type=int, default=1000, help="create: instances per create_batch")
    p.add_argument("--max-concurrency", type=int, default=256)
    p.add_argument("--poll", type=float, default=0.05,
                   help="fallback poll of the completion waiter, seconds")
    p.add_argument("--stats", action="store_true", help="report durable txns per case")
    p.add_argument("--dir", default=None, help="where the DB files go (default: a temp dir)")
    a = p.parse_args(argv)

    root = a.dir or tempfile.mkdtemp(prefix="agentflow-bench-")
    os.makedirs(root, exist_ok=True)
    cases = ["conc", "seq", "create"] if a.case == "all" else [a.case]
    try:
        for case in cases:
            path = fresh_db(root, case)
            if case == "conc":
                res = asyncio.run(run_steps(path, workflows=a.workflows, steps=a.steps,
                                            poll=a.poll, max_concurrency=a.max_concurrency,
                                            stats=a.stats, case="conc"))
            elif case == "seq":
                res = asyncio.run(run_steps(path, workflows=1, steps=a.seq_steps,
                                            poll=a.poll, max_concurrency=a.max_concurrency,
                                            stats=a.stats, case="seq"))
            else:
                res = asyncio.run(run_create(path, creates=a.creates, batch=a.batch))
            print(json.dumps(res), flush=True)
    finally:
        if a.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
