"""Many tenants at once: N agents each starting one 3-step plan at the same moment,
next to the same workload as trusted workflows, in the same run. Prints JSON lines.

    python bench/bench_tenants.py [--agents 1000] [--max-workers 64]

- ``trusted``: one `Engine` on a SQLite file, a registered workflow of three
  ``step.do`` calls, N instances created at once; wall time until all are complete.
- ``plans``: one `AgentFlow` on a SQLite file with confined worker processes
  (``max_workers`` slots), N agents, each with its own plan (the same three steps)
  and one instance, all started at once; wall time until all are complete, how many
  ended ``errored``, and memory: the host's peak RSS (``/proc/self/status``) and the
  peak of the summed PSS of the zygote and all live workers (``smaps_rollup``; the
  host's RSS every 20 ms, the workers' PSS every 250 ms in a thread, since reading
  ``smaps_rollup`` of 65 processes costs milliseconds of the host's CPU).
- ``trusted_each``: the same trusted workload, but each instance created by its own
  ``create`` call (as each agent starts its own plan), all at once.
- ``floor``: the sandbox alone: fork N confined workers from the zygote (at most
  ``max_workers`` alive), wait for each one's ``ready``, kill it. No engine, no plan:
  the least any design with one confined process per agent pays on this machine.
- ``ratio``: trusted throughput over plans' throughput (instances per second), against
  both trusted variants, and the same ratio for the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agentflow import AgentFlow, Engine

PLAN = '''
async def run(event, step):
    a = await step.do("one", lambda: event.payload)
    b = await step.do("two", lambda: a + 1)
    c = await step.do("three", lambda: b * 2)
    return c
'''


async def three_steps(event: Any, step: Any) -> Any:
    a = await step.do("one", lambda: event.payload)
    b = await step.do("two", lambda: a + 1)
    return await step.do("three", lambda: b * 2)


def rss(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


async def trusted(n: int, directory: str, *, each: bool = False) -> float:
    """The trusted workload: one ``create_batch``, or with ``each`` one ``create`` per
    instance, all at once."""
    label = "trusted_each" if each else "trusted"
    engine = Engine(f"sqlite:///{directory}/{label}.db")
    engine.register("three", three_steps)
    async with engine:
        binding = engine.binding("three")
        started = time.perf_counter()
        if each:
            instances = await asyncio.gather(*(binding.create(params=i) for i in range(n)))
        else:
            instances = await binding.create_batch([{"params": i} for i in range(n)])
        statuses = await asyncio.gather(*(inst.wait(timeout=600) for inst in instances))
        elapsed = time.perf_counter() - started
    errored = sum(s.status != "complete" for s in statuses)
    emit({"bench": label, "instances": n, "seconds": round(elapsed, 3),
          "per_second": round(n / elapsed, 1), "errored": errored})
    return n / elapsed


async def floor(n: int, max_workers: int) -> float:
    from sandbox._limits import Limits
    from sandbox._spawner import ZygoteClient

    zygote = ZygoteClient(Limits())
    await zygote.start()
    slots = asyncio.Semaphore(max_workers)
    loop = asyncio.get_running_loop()

    async def one(uid: int) -> None:
        async with slots:
            worker = await zygote.spawn(uid)
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(worker.from_worker,
                            lambda: ready.done() or ready.set_result(None))
            try:
                await ready
            finally:
                loop.remove_reader(worker.from_worker)
                signal.pidfd_send_signal(worker.pidfd, signal.SIGKILL)
                for fd in (worker.pidfd, worker.to_worker, worker.from_worker):
                    os.close(fd)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(one(Limits().uid_base + i) for i in range(n)))
        elapsed = time.perf_counter() - started
    finally:
        await zygote.close()
    emit({"bench": "floor", "workers": n, "max_workers": max_workers,
          "seconds": round(elapsed, 3), "per_second": round(n / elapsed, 1)})
    return n / elapsed


async def plans(n: int, max_workers: int, directory: str) -> tuple[float, float]:
    af = AgentFlow(f"sqlite:///{directory}/plans.db", isolation="process",
                   max_workers=max_workers)
    async with af:
        agents = [af.agent(f"tenant-{i:04d}") for i in range(n)]
        for agent in agents:
            await agent.submit_plan("three", PLAN)
        host_base = rss()
        peaks = {"host": host_base, "workers": 0, "live_workers": 0, "waiting": 0}
        stop = asyncio.Event()

        zygote = af.pool.sandbox_pid

        def sample_workers() -> None:
            while not stop.is_set() and zygote is not None:
                workers = children_of(zygote)
                peaks["workers"] = max(peaks["workers"],
                                       pss(zygote) + sum(pss(p) for p in workers))
                peaks["live_workers"] = max(peaks["live_workers"], len(workers))
                time.sleep(0.25)

        async def sample() -> None:
            thread = asyncio.ensure_future(asyncio.to_thread(sample_workers))
            while not stop.is_set():
                peaks["host"] = max(peaks["host"], rss())
                peaks["waiting"] = max(peaks["waiting"], len(af.pool.waiting))
                await asyncio.sleep(0.02)
            await thread

        sampler = asyncio.ensure_future(sample())
        started = time.perf_counter()
        instances = await asyncio.gather(*(agent.start("three", params=i)
                                           for i, agent in enumerate(agents)))
        statuses = await asyncio.gather(*(inst.wait(timeout=600) for inst in instances))
        elapsed = time.perf_counter() - started
        stop.set()
        await sampler
        # The same number of instances again, spread over the agents whose workers are
        # still alive: no fork, only the runs.
        warm_agents = [a for a in agents if af.pool.worker_layers(a.id)]
        started = time.perf_counter()
        again = await asyncio.gather(*(warm_agents[i % len(warm_agents)].start(
            "three", params=i) for i in range(n)))
        warm_statuses = await asyncio.gather(*(inst.wait(timeout=600) for inst in again))
        warm_elapsed = time.perf_counter() - started
    emit({"bench": "plans_live_workers", "instances": n, "agents": len(warm_agents),
          "seconds": round(warm_elapsed, 3), "per_second": round(n / warm_elapsed, 1),
          "errored": sum(s.status != "complete" for s in warm_statuses)})
    errored = [s.error for s in statuses if s.status != "complete"]
    wrong = sum(s.output != (i + 1) * 2 for i, s in enumerate(statuses))
    emit({"bench": "plans", "agents": n, "max_workers": max_workers,
          "seconds": round(elapsed, 3), "per_second": round(n / elapsed, 1),
          "errored": len(errored), "wrong_output": wrong, "first_errors": errored[:3],
          "host_rss_base_mib": round(host_base / 2**20, 1),
          "host_rss_peak_mib": round(peaks["host"] / 2**20, 1),
          "workers_pss_peak_mib": round(peaks["workers"] / 2**20, 1),
          "live_workers_peak": peaks["live_workers"],
          "runs_waiting_for_a_slot_peak": peaks["waiting"],
          "total_peak_mib": round((peaks["host"] + peaks["workers"]) / 2**20, 1)})
    return n / elapsed, n / warm_elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--max-workers", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        base = await trusted(args.agents, directory)
        each = await trusted(args.agents, directory, each=True)
        least = await floor(args.agents, args.max_workers)
        dynamic, warm = await plans(args.agents, args.max_workers, directory)
    emit({"bench": "ratio", "trusted_over_plans": round(base / dynamic, 2),
          "trusted_each_over_plans": round(each / dynamic, 2),
          "trusted_over_plans_live_workers": round(base / warm, 2),
          "trusted_each_over_plans_live_workers": round(each / warm, 2),
          "trusted_over_floor": round(base / least, 2),
          "trusted_each_over_floor": round(each / least, 2)})


if __name__ == "__main__":
    asyncio.run(main())
