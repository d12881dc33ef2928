"""Retention over 100,000 finished instances on SQLite: does the file shrink, and does
the engine keep stepping while the policy prunes?

    python bench/bench_retention.py [--instances 100000] [--batch 500] [--rounds 3]

Each round seeds a fresh file with N finished instances (one journal row with a ~1 KiB
result and one event each, written straight into the tables: seeding is not what is
measured), then, in one engine process (the worst case: the pruning shares the event
loop and the writer thread with the runs, as a worker's automatic pruning does):

instances run sequential steps back to back the whole time, and every step's latency
is taken (from the end of one step body to the start of the next: a durable commit and
the engine's own work), while `Engine.retention.delete_many` (what a policy's prune
runs) deletes the N instances in windows of ``--window`` instances: a pruning window,
then a window without pruning of the same length, and so on. A step counts for the
window it ended in, so both sides share the machine's drift (it is shared and noisy).

It prints the file size before and after, the time spent pruning, and the step latency
while pruning as a ratio of the latency while not (median and p99), the peer measured
in the same run. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
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
from agentflow._retention import DEFAULT_PACE

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


async def one_round(n: int, batch: int, steps: int, pace: float, window: int
                    ) -> dict[str, Any]:
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

    async with engine:
        marks.clear()  # a warm-up
        await (await engine.binding("seq").create({"steps": steps})).wait(timeout=600)

        # What a "1 day" policy prunes, without setting one: a policy would also be
        # applied by the engine's own loop every few minutes, beside the windows here.
        marks.clear()
        stop = asyncio.Event()

        async def stepping() -> None:  # steps run back to back the whole time
            while not stop.is_set():
                inst = await engine.binding("seq").create({"steps": steps})
                await inst.wait(timeout=600)
        runner = asyncio.create_task(stepping())
        # Windows alternate: pruning on (a slice of the prune), then off for as long;
        # a step counts for the window it ended in. Alternating cancels the drift of a
        # shared machine, which a before/after comparison would not.
        windows: list[tuple[float, float, bool]] = []
        deleted, pruning_s = 0, 0.0
        while True:
            began = time.perf_counter()
            report = await engine.retention.delete_many(older_than="1 day", batch=batch,
                                                        pace=pace, limit=window)
            ended = time.perf_counter()
            windows.append((began, ended, True))
            deleted, pruning_s = deleted + report.deleted, pruning_s + ended - began
            await asyncio.sleep(ended - began)
            windows.append((ended, time.perf_counter(), False))
            if report.deleted < window:
                break
        stop.set()
        await runner

    starts = [a for a, _, _ in windows]

    def gaps_in(on: bool) -> list[float]:
        found = []
        for own in marks.values():
            for a, b in itertools.pairwise(own):
                k = bisect.bisect_right(starts, b) - 1
                if k >= 0 and b < windows[k][1] and windows[k][2] == on:
                    found.append(b - a)
        return found

    return {"before": before, "after": size(path), "deleted": deleted,
            "prune_s": pruning_s, "alone": gaps_in(False), "during": gaps_in(True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=25)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=int, default=2000,
                        help="instances deleted per pruning window")
    parser.add_argument("--pace", type=float, default=DEFAULT_PACE,
                        help="rest this many times each batch's duration after it")
    args = parser.parse_args()
    rows = []
    for r in range(args.rounds):
        res = asyncio.run(one_round(args.instances, args.batch, args.steps, args.pace,
                                    args.window))
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
