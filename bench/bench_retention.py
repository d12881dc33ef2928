"""Retention over 100,000 finished instances on SQLite: does the file shrink, and does
the engine keep stepping while the policy prunes?

    python bench/bench_retention.py [--instances 100000] [--batch 500] [--rounds 3]

Each round seeds a fresh file with N finished instances (one journal row with a ~1 KiB
result and one event each, written straight into the tables: seeding is not what is
measured), then, in one engine process (the worst case: the pruning shares the event
loop and the writer thread with the runs, as a worker's automatic pruning does):

1. baseline: one instance runs sequential steps alone; every step's latency is taken
   (from the end of one step body to the start of the next: a durable commit and the
   engine's own work);
2. the same instance shape runs while `Engine.retention.prune` deletes the N instances
   in batches; only the steps that ran while the prune did are counted.

It prints the file size before and after, the prune's duration, and the step latency
during pruning as a ratio of the baseline (median and p99), the peer measured in the
same run. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sqlite3
import statistics
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from agentflow import Engine

T0 = 1_700_000_000.0
RESULT = '"' + "x" * 1000 + '"'


def seed(path: Path, n: int) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("BEGIN")
        for start in range(0, n, 10_000):
            ids = [f"old-{k}" for k in range(start, min(n, start + 10_000))]
            db.executemany(
                "INSERT INTO instances (id, workflow, status, payload, created_at,"
                " updated_at, output, fence) VALUES (?, 'old', 'complete', '{}', ?, ?,"
                " '\"done\"', 1)", [(i, T0, T0) for i in ids])
            db.executemany(
                "INSERT INTO steps (instance_id, seq, name, n, kind, status, attempts,"
                " started_at, result, finished_at) VALUES (?, 1, 'work', 1, 'do', 'ok', 1,"
                " ?, ?, ?)", [(i, T0, RESULT, T0) for i in ids])
            db.executemany(
                "INSERT INTO events (instance_id, type, payload, created_at, consumed_seq)"
                " VALUES (?, 'go', '{}', ?, 1)", [(i, T0) for i in ids])
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def size(path: Path) -> int:
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one_round(n: int, batch: int, steps: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="agentflow-retention-"))
    path = folder / "retention.db"
    async with Engine(f"sqlite:///{path}", run_scheduler=False):
        pass  # the schema, with incremental auto_vacuum
    seed(path, n)
    before = size(path)
    marks: dict[str, list[float]] = {}
    engine = Engine(f"sqlite:///{path}")

    @engine.workflow("seq")
    async def seq(event: Any, step: Any) -> int:
        own = marks.setdefault(event.instance_id, [])
        for k in range(event.payload["steps"]):
            await step.do(f"s{k}", lambda: own.append(time.perf_counter()))
        return len(own)

    def gaps(until: float = float("inf")) -> list[float]:
        return [b - a for own in marks.values()
                for a, b in itertools.pairwise(own) if b <= until]

    async with engine:
        for _ in range(2):  # a warm-up, then the baseline
            marks.clear()
            await (await engine.binding("seq").create({"steps": steps})).wait(timeout=600)
        alone = gaps()

        # Set only now: the worker loop's automatic pruning (at start) found no policy.
        await engine.retention.set_policy("1 day")
        marks.clear()
        started = time.perf_counter()
        prune = asyncio.create_task(engine.retention.prune(batch=batch))
        while not prune.done():  # steps run for as long as the prune does
            inst = await engine.binding("seq").create({"steps": steps})
            await inst.wait(timeout=600)
        report = await prune
        ended = time.perf_counter()
        during = gaps(ended)
    after = size(path)
    return {"before": before, "after": after, "deleted": report.deleted,
            "prune_s": ended - started, "alone": alone, "during": during}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for r in range(args.rounds):
        res = asyncio.run(one_round(args.instances, args.batch, args.steps))
        med_a, med_d = statistics.median(res["alone"]), statistics.median(res["during"])
        p99_a, p99_d = percentile(res["alone"], 0.99), percentile(res["during"], 0.99)
        rows.append((med_d / med_a, p99_d / p99_a))
        print(f"round {r + 1}: deleted {res['deleted']:,} in {res['prune_s']:.1f}s; file "
              f"{res['before'] / 2**20:.1f} MiB -> {res['after'] / 2**20:.2f} MiB; step "
              f"latency alone median {med_a * 1e3:.3f} ms p99 {p99_a * 1e3:.3f} ms, during "
              f"pruning median {med_d * 1e3:.3f} ms p99 {p99_d * 1e3:.3f} ms "
              f"({len(res['during'])} steps): x{med_d / med_a:.2f} median, "
              f"x{p99_d / p99_a:.2f} p99")
    print(f"median over rounds: x{statistics.median(r[0] for r in rows):.2f} median latency, "
          f"x{statistics.median(r[1] for r in rows):.2f} p99 latency during pruning")


if __name__ == "__main__":
    main()
