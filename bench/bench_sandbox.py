"""Sandbox benchmarks: cold start, idle memory, step round trip. Prints JSON lines.

    python bench/bench_sandbox.py [--runs 200] [--steps 2000] [--workers 20]

- ``cold_start``: from ``run_plan`` for a new agent to its first step message reaching
  the host, with a fresh worker from the warm zygote (fully confined: every layer of
  `doctor()`), p50/p99 over ``--runs`` agents. New agents arrive ``--gap-ms`` apart,
  which leaves the zygote time to prepare its spare worker; ``cold_start_burst`` is
  the same with no gap at all (the spare is still being prepared when asked).
- ``idle_worker_pss``: PSS of idle workers (``/proc/PID/smaps_rollup``) with
  ``--workers`` of them alive, after each ran one plan.
- ``step_round_trip``: per step, for a plan awaiting ``step.now()`` (one message each
  way) and ``step.do`` (two each way: the call and its body), through a confined worker
  and inline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sandbox import WorkerPool, compile_plan

EVENT = {"payload": None, "timestamp": "2026-01-01T00:00:00+00:00", "instance_id": "bench"}
FIRST_STEP = compile_plan("async def run(event, step):\n    return await step.now()\n")


class Host:
    def __init__(self) -> None:
        self.first_step_at: float | None = None

    async def step(self, op: str, args: dict[str, Any],
                   run_body: Callable[[], Awaitable[Any]] | None) -> Any:
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter()
        return await run_body() if run_body is not None else 1.5

    async def capability(self, *args: Any) -> Any:
        return None


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


async def cold_start(runs: int, gap_ms: float, label: str) -> None:
    async with WorkerPool(max_workers=8) as pool:
        for i in range(5):  # warm the host side (imports, caches), not measured
            await pool.run_plan(f"warmup-{i}", FIRST_STEP, EVENT, Host(), capabilities=[])
        samples = []
        for i in range(runs):
            await pool.evict(f"cold-{i - 1}")
            await asyncio.sleep(gap_ms / 1000)
            host = Host()
            started = time.perf_counter()
            await pool.run_plan(f"cold-{i}", FIRST_STEP, EVENT, host, capabilities=[])
            assert host.first_step_at is not None
            samples.append((host.first_step_at - started) * 1000)
        layers = [s.name for s in pool.layers if s.available]
    emit({"bench": label, "unit": "ms", "runs": runs, "gap_ms": gap_ms,
          "p50": round(percentile(samples, 0.5), 3), "p99": round(percentile(samples, 0.99), 3),
          "mean": round(statistics.fmean(samples), 3), "layers": layers})


def pss_kib(pid: int) -> tuple[int, int]:
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                fields[parts[0].rstrip(":")] = int(parts[1])
    return fields["Pss"], fields["Rss"]


async def idle_memory(workers: int) -> None:
    async with WorkerPool(max_workers=workers) as pool:
        for i in range(workers):
            await pool.run_plan(f"idle-{i}", FIRST_STEP, EVENT, Host(), capabilities=[])
        pids = [pool.worker_pid(f"idle-{i}") for i in range(workers)]
        readings = [pss_kib(pid) for pid in pids if pid is not None]
        zygote = pool._zygote.pid if pool._zygote else None
        zygote_pss = pss_kib(zygote)[0] if zygote else None
    pss = [p for p, _ in readings]
    emit({"bench": "idle_worker_pss", "unit": "MiB", "workers": len(pss),
          "median": round(statistics.median(pss) / 1024, 2),
          "max": round(max(pss) / 1024, 2),
          "rss_median": round(statistics.median(r for _, r in readings) / 1024, 2),
          "zygote_pss": round(zygote_pss / 1024, 2) if zygote_pss else None})


async def round_trip(steps: int) -> None:
    now_plan = compile_plan(f"async def run(event, step):\n    for i in range({steps}):\n"
                            f"        await step.now()\n    return {steps}\n")
    do_plan = compile_plan(f"async def run(event, step):\n    for i in range({steps}):\n"
                           f"        await step.do(f's{{i}}', lambda: i)\n    return {steps}\n")
    for isolation in ("process", "inline"):
        async with WorkerPool(isolation=isolation) as pool:  # type: ignore[arg-type]
            for name, compiled in (("step.now", now_plan), ("step.do", do_plan)):
                await pool.run_plan("rt", compiled, EVENT, Host(), capabilities=[])  # warm
                best = float("inf")
                for _ in range(3):
                    started = time.perf_counter()
                    await pool.run_plan("rt", compiled, EVENT, Host(), capabilities=[])
                    best = min(best, (time.perf_counter() - started) / steps * 1000)
                emit({"bench": "step_round_trip", "unit": "ms", "isolation": isolation,
                      "call": name, "per_step": round(best, 4), "steps": steps})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    args = parser.parse_args()
    await cold_start(args.runs, args.gap_ms, "cold_start")
    await cold_start(args.runs, 0.0, "cold_start_burst")
    await idle_memory(args.workers)
    await round_trip(args.steps)


if __name__ == "__main__":
    asyncio.run(main())
