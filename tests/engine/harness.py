"""Real worker processes on one database (a SQLite file or PostgreSQL): start them, kill
them, read what they did."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def start_worker(db_url: str, log: Path, *, lease: float = 1.0) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AGENTFLOW_TEST_LOG": str(log), "PYTHONPATH": str(REPO)}
    with open(log.parent / "workers.err", "ab") as err:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "agentflow.cli", "worker", "--db", db_url,
             "--app", "tests.engine.workloads:engine", "--lease", str(lease),
             "--poll", "0.05"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)


@dataclass
class Execution:
    pid: int
    nonce: str
    start: float
    end: float | None = None


@dataclass
class Log:
    """Step body executions per (instance, step), in the order they started."""

    runs: dict[tuple[str, int], list[Execution]] = field(default_factory=dict)
    by_instance: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Log:
        runs: dict[tuple[str, int], dict[str, Execution]] = defaultdict(dict)
        by_instance: dict[str, list[tuple[float, int]]] = defaultdict(list)
        if path.exists():
            for line in path.read_text().splitlines():
                fields = line.split()
                if len(fields) != 6:  # a line still being written as we read
                    continue
                pid, inst, i, phase, nonce, t = fields
                key = (inst, int(i))
                if phase == "start":
                    runs[key][nonce] = Execution(int(pid), nonce, float(t))
                elif nonce in runs[key]:
                    runs[key][nonce].end = float(t)
                by_instance[inst].append((float(t), int(pid)))
        return cls({k: sorted(v.values(), key=lambda e: e.start) for k, v in runs.items()},
                   dict(by_instance))

    def starts(self) -> int:
        return sum(len(v) for v in self.runs.values())


def query(db: Path | str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` on a SQLite file (a path or ``sqlite:///`` URL) or on a
    PostgreSQL URL, read with a connection of its own."""
    if isinstance(db, str) and db.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(db, autocommit=True) as pg:
            return pg.execute(sql).fetchall()
    path = db[len("sqlite:///"):] if isinstance(db, str) and db.startswith("sqlite:///") else db
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def committed_steps(db: Path | str) -> dict[tuple[str, int], str]:
    """(instance, step index) -> nonce of the execution whose result was journaled."""
    rows = query(db, "SELECT instance_id, name, result FROM steps WHERE status = 'ok'")
    return {(inst, int(name[1:])): json.loads(result)[1] for inst, name, result in rows}


def statuses(db: Path | str) -> dict[str, tuple[str, str | None]]:
    return {r[0]: (r[1], r[2]) for r in query(db, "SELECT id, status, output FROM instances")}


async def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)


def check_invariants(log: Log, committed: dict[tuple[str, int], str], killed: set[int],
                     ) -> None:
    """What a crash may and may not do to step bodies:

    - the execution whose result was journaled is the last one of that step: nothing
      ran a committed step again;
    - every earlier execution belongs to a process that was SIGKILLed (the only way a
      step may run again), so a step ran at most once more than the crashes that hit it;
    - an instance never ran in two processes at once: ordered by time, its log lines
      change process only forward (A..A B..B, never A B A).
    """
    for key, nonce in committed.items():
        runs = log.runs[key]
        assert runs[-1].nonce == nonce, f"step {key} ran again after its result was committed"
        for earlier in runs[:-1]:
            assert earlier.pid in killed, (
                f"step {key} ran more than once in a process that was not killed "
                f"(pid {earlier.pid})")
    for inst, events in log.by_instance.items():
        order: list[int] = []
        for _, pid in sorted(events):
            if not order or order[-1] != pid:
                assert pid not in order, f"instance {inst} ran in two processes at once"
                order.append(pid)


async def run_chaos(directory: Path, *, instances: int, steps: int, kills: int,
                    workers: int = 3, seed: int = 7, timeout: float = 90.0,
                    url: str | None = None) -> dict[str, int]:
    """Several workers on one database (``url``, default a SQLite file in ``directory``),
    random SIGKILLs while they run, then the checks of `check_invariants`. Returns
    counts for a report."""
    import random

    from agentflow import Engine
    from tests.engine.workloads import chain

    log_path = directory / "steps.log"
    db = url = url or f"sqlite:///{directory / 'chaos.db'}"
    engine = Engine(url, run_scheduler=False)
    engine.register("chain", chain)
    async with engine:
        await engine.binding("chain").create_batch(
            [{"id": f"c{i}", "params": {"steps": steps}} for i in range(instances)])
    rng = random.Random(seed)
    procs: list[subprocess.Popen[bytes]] = [start_worker(url, log_path) for _ in range(workers)]
    killed: set[int] = set()
    try:
        for k in range(kills):
            target = Log.read(log_path).starts() + rng.randint(40, 90)
            await wait_for(lambda t=target: Log.read(log_path).starts() >= t
                           or all(s == "complete" for s, _ in statuses(db).values()),
                           timeout, f"progress before kill {k}")
            victim = procs.pop(rng.randrange(len(procs)))
            kill(victim)
            killed.add(victim.pid)
            procs.append(start_worker(url, log_path))
        await wait_for(lambda: all(s == "complete" for s, _ in statuses(db).values()),
                       timeout, "all instances to complete")
    finally:
        for w in procs:
            w.send_signal(signal.SIGTERM)
        for w in procs:  # a worker killed before its handler is set up exits by signal
            assert w.wait(timeout=10) in (0, -signal.SIGTERM)
    final = statuses(db)
    assert len(final) == instances
    assert all(out == str(sum(range(steps))) for _, out in final.values())
    committed = committed_steps(db)
    assert len(committed) == instances * steps
    log = Log.read(log_path)
    check_invariants(log, committed, killed)
    return {"instances": instances, "steps": instances * steps, "kills": len(killed),
            "body_runs": log.starts(), "reruns": log.starts() - instances * steps}
