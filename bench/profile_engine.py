"""Where agentflow's time per step goes, for the conc (200 x 10) and seq (1 x 2,000) cases.

usage:
    python bench/profile_engine.py --case seq  --mode cprofile  [--top 30]
    python bench/profile_engine.py --case conc --mode cprofile  --repeat 10
    python bench/profile_engine.py --case seq  --mode trace     # time per store call
    python bench/profile_engine.py --case seq  --mode none      # for py-spy:
    py-spy record --threads --idle --rate 1000 -f raw -o /tmp/seq.txt -- \\
        python bench/profile_engine.py --case seq --mode none

Modes:
- ``cprofile``: cProfile of the event-loop thread (the store's connection threads are
  not seen by cProfile: time the loop spends waiting for them shows up as
  ``select.epoll.poll``). Prints the top functions by own time and a summary by area
  (ours in _step / _engine / store, tenacity, json, asyncio, waiting in epoll).
- ``trace``: wraps each public coroutine method of the engine's store (``engine.store``:
  ``commit``, ``claim_due_instances``, ``load_journal``, ``renew_leases``, ...; on this
  process's store object only, agentflow is not changed) and reports, per method, the
  calls, the time the event loop awaited each, and that time per step. ``commit`` is
  what a runner awaits for its step to be durable (its share of a group commit).
- ``none``: just runs the case (``--repeat`` times, fresh file each), to attach py-spy.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import inspect
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
from agentflow.store import Store

AREAS = [  # (area, substring of "file:function"), first match wins
    ("waiting (epoll: loop idle, store threads / fsync)", "method 'poll' of 'select.epoll"),
    ("agentflow/_step.py", "agentflow/_step.py"),
    ("agentflow/_engine.py", "agentflow/_engine.py"),
    ("agentflow/store/sqlite.py", "agentflow/store/sqlite.py"),
    ("agentflow/store/_base.py (dataclasses)", "agentflow/store/_base.py"),
    ("agentflow other (_limits, _durations, errors)", "agentflow/"),
    ("tenacity (AsyncRetrying per write txn)", "tenacity/"),
    ("json", "json/"),
    ("asyncio (event loop, futures, tasks, locks)", "asyncio/"),
    ("queue/threading", "queue.py"),
    ("queue/threading", "threading.py"),
    ("contextlib", "contextlib.py"),
    ("json", "_json"),
    ("builtins (uuid, time, isinstance, ...)", ""),
]


async def one_run(path: str, workflows: int, steps: int, trace: dict[str, list[float]] | None
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


#: Store calls that wait for something to happen rather than do work.
IDLE_CALLS = frozenset({"wait_for_change"})


def store_methods() -> list[str]:
    """The store's public coroutine methods: the interface the engine drives it by."""
    return sorted(name for name, member in inspect.getmembers(Store)
                  if not name.startswith("_") and inspect.iscoroutinefunction(member))


def instrument(engine: Engine, trace: dict[str, list[float]]) -> None:
    """Time every public store call the engine makes, through the store's own object."""
    store = engine.store
    for name in store_methods():
        setattr(store, name, _timed(name, getattr(store, name), trace))


def _timed(name: str, method: Any, trace: dict[str, list[float]]) -> Any:
    async def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            trace[name].append(time.perf_counter() - t0)

    return timed


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
    stats.sort_stats("cumulative").print_stats(r"agentflow|tenacity", top)
    print("\n# agentflow/tenacity by cumulative time")
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
    trace: dict[str, list[float]] | None = defaultdict(list) if a.mode == "trace" else None
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
        print(f"\n# store calls the engine awaited (n={total_steps} steps): calls, mean "
              f"await, await per step")
        print(f"{'store method':<28}{'calls':>8}{'await us':>10}{'await us/step':>15}")
        for name, times in sorted(trace.items(), key=lambda kv: -sum(kv[1])):
            n = len(times)
            idle = "  (idle: a loop waiting for work)" if name in IDLE_CALLS else ""
            print(f"{name:<28}{n:>8}{sum(times) / n * 1e6:>10.1f}"
                  f"{sum(times) / total_steps * 1e6:>15.1f}{idle}")

if __name__ == "__main__":
    main()
