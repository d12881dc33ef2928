"""Where agentflow's time per step goes, for the conc (200 x 10) and seq (1 x 2,000) cases.

usage:
    python bench/profile_engine.py --case seq  --mode cprofile  [--top 30]
    python bench/profile_engine.py --case conc --mode cprofile  --repeat 10
    python bench/profile_engine.py --case seq  --mode trace     # per-statement hop timing
    python bench/profile_engine.py --case seq  --mode none      # for py-spy:
    py-spy record --threads --idle --rate 1000 -f raw -o /tmp/seq.txt -- \\
        python bench/profile_engine.py --case seq --mode none

Modes:
- ``cprofile``: cProfile of the event-loop thread (the aiosqlite worker thread is not
  seen by cProfile: time the loop spends waiting for it shows up as ``select.epoll.poll``).
  Prints the top functions by own time and a summary by area (ours in _step / _engine /
  store, aiosqlite, tenacity, json, asyncio, waiting in epoll).
- ``trace``: wraps the writer connection's ``_execute`` (bench-local, agentflow is not
  changed) and reports, per SQL statement kind, the time the loop awaited it and the time
  SQLite itself spent in the worker thread; the difference is the thread hop.
- ``none``: just runs the case (``--repeat`` times, fresh file each), to attach py-spy.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_engine import fresh_db, wait_all_finished

from agentflow import Engine

AREAS = [  # (area, substring of "file:function"), first match wins
    ("waiting (epoll: loop idle, aiosqlite thread / fsync)", "method 'poll' of 'select.epoll"),
    ("agentflow/_step.py", "agentflow/_step.py"),
    ("agentflow/_engine.py", "agentflow/_engine.py"),
    ("agentflow/store/sqlite.py", "agentflow/store/sqlite.py"),
    ("agentflow/store/_base.py (dataclasses)", "agentflow/store/_base.py"),
    ("agentflow other (_limits, _durations, errors)", "agentflow/"),
    ("aiosqlite (queueing, Result/Cursor wrappers)", "aiosqlite/"),
    ("tenacity (AsyncRetrying per write txn)", "tenacity/"),
    ("json", "json/"),
    ("asyncio (event loop, futures, tasks, locks)", "asyncio/"),
    ("queue/threading", "queue.py"),
    ("queue/threading", "threading.py"),
    ("contextlib", "contextlib.py"),
    ("json", "_json"),
    ("builtins (uuid, time, isinstance, ...)", ""),
]


async def one_run(path: str, workflows: int, steps: int, trace: dict[str, list[Any]] | None
                  ) -> float:
    engine = Engine(f"sqlite:///{path}", max_concurrency=256)

    @engine.workflow("plan")
    async def plan(event: Any, step: Any) -> int:
        x = 0
        for _ in range(event.payload["steps"]):
            x = await step.do("add", lambda x=x: x + 1)
        return x

    async with engine:
        if trace is not None:
            instrument(engine, trace)
        wf = engine.binding("plan")
        t0 = time.perf_counter()
        await wf.create_batch([{"params": {"steps": steps}} for _ in range(workflows)])
        await wait_all_finished(engine, path, "plan", workflows, 0.05)
        return time.perf_counter() - t0


def instrument(engine: Engine, trace: dict[str, list[Any]]) -> None:
    store = engine._store
    conn = store._writer
    orig = conn._execute

    async def timed(fn: Any, *args: Any, **kw: Any) -> Any:
        sql = args[0] if args and isinstance(args[0], str) else getattr(fn, "__name__", "?")
        words = sql.split()
        label = " ".join(words[:2]) if words and words[0] in ("BEGIN", "INSERT") else words[0]
        box: list[float] = []

        def inner(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                box.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        result = await orig(inner, *args, **kw)
        trace[label].append((time.perf_counter() - t0, box[0] if box else 0.0))
        return result

    conn._execute = timed
    apply = store._apply_batch

    async def timed_batch(batch: Any) -> None:
        t0 = time.perf_counter()
        await apply(batch)
        trace["== whole batch txn (_apply_batch)"].append((time.perf_counter() - t0, len(batch)))

    store._apply_batch = timed_batch
    commit = store.commit

    async def timed_commit(c: Any) -> Any:
        t0 = time.perf_counter()
        r = await commit(c)
        trace["== runner awaits store.commit"].append((time.perf_counter() - t0, 0.0))
        return r

    store.commit = timed_commit


def area_summary(stats: pstats.Stats, total: float, top: int) -> None:
    areas: dict[str, float] = defaultdict(float)
    for (file, _line, func), (_cc, _nc, tt, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        key = f"{file}:{func}"
        for area, needle in AREAS:
            if needle in key:
                areas[area] += tt
                break
    print(f"\n# own time by area (event-loop thread), total {total:.3f} s")
    for area, tt in sorted(areas.items(), key=lambda kv: -kv[1]):
        print(f"{tt:8.3f} s {tt / total * 100:5.1f}%  {area}")
    s = io.StringIO()
    stats.stream = s  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    print(f"\n# top {top} by own time")
    print("\n".join(s.getvalue().splitlines()[6:]))
    s2 = io.StringIO()
    stats.stream = s2  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(r"agentflow|aiosqlite|tenacity", top)
    print("\n# agentflow/aiosqlite/tenacity by cumulative time")
    print("\n".join(s2.getvalue().splitlines()[6:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=["conc", "seq"], default="seq")
    p.add_argument("--mode", choices=["cprofile", "trace", "none"], default="cprofile")
    p.add_argument("--repeat", type=int, default=1, help="runs, each on a fresh file")
    p.add_argument("--top", type=int, default=30)
    a = p.parse_args()
    workflows, steps = (200, 10) if a.case == "conc" else (1, 2000)
    root = tempfile.mkdtemp(prefix="agentflow-prof-")
    trace: dict[str, list[Any]] | None = defaultdict(list) if a.mode == "trace" else None
    prof = cProfile.Profile() if a.mode == "cprofile" else None
    walls = []
    try:
        for r in range(a.repeat):
            path = fresh_db(root, f"{a.case}{r}")
            if prof is not None:
                prof.enable()
            walls.append(asyncio.run(one_run(path, workflows, steps, trace)))
            if prof is not None:
                prof.disable()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    total_steps = workflows * steps * a.repeat
    wall = sum(walls)
    print(f"# {a.case}: {a.repeat} run(s) of {workflows} x {steps}, mode {a.mode}: "
          f"{total_steps / wall:,.0f} steps/s, {wall / total_steps * 1e6:.1f} us/step "
          f"(profiler overhead included)")
    if prof is not None:
        stats = pstats.Stats(prof)
        total = stats.total_tt  # type: ignore[attr-defined]
        area_summary(stats, total, a.top)
        print(f"\n# per step: {total / total_steps * 1e6:.1f} us of profiled loop time")
    if trace is not None:
        print(f"\n# writer statements, per step (n={total_steps}):"
              f" awaited by loop / run in worker thread / hop = difference")
        print(f"{'statement':<38}{'calls':>7}{'await us':>10}{'sqlite us':>10}{'hop us':>8}"
              f"{'await us/step':>15}")
        for label, rows in sorted(trace.items()):
            n = len(rows)
            aw = sum(r[0] for r in rows)
            if label.startswith("=="):
                extra = (f"  mean batch {sum(r[1] for r in rows) / n:.1f} commits"
                         if "batch" in label else "")
                print(f"{label:<38}{n:>7}{aw / n * 1e6:>10.1f}{'':>10}{'':>8}"
                      f"{aw / total_steps * 1e6:>15.1f}{extra}")
                continue
            run = sum(r[1] for r in rows)
            print(f"{label:<38}{n:>7}{aw / n * 1e6:>10.1f}{run / n * 1e6:>10.1f}"
                  f"{(aw - run) / n * 1e6:>8.1f}{aw / total_steps * 1e6:>15.1f}")


if __name__ == "__main__":
    main()
