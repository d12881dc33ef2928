"""Workers whose wall clocks disagree still agree on leases: one worker runs 30 s ahead
of the others and no step body runs twice, no instance runs in two places at once.
(Before leases were judged on the database's clock, a worker 10 s ahead took over
instances whose leases had not run out.) On a SQLite file and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from agentflow import Engine
from tests.engine.harness import (
    REPO,
    Log,
    check_invariants,
    committed_steps,
    start_worker,
    statuses,
    wait_for,
)
from tests.engine.workloads import chain

AHEAD = '''
import runpy, sys, time
_real = time.time
time.time = lambda: _real() + 30.0  # this machine's clock is half a minute ahead
sys.argv = ["agentflow", *sys.argv[1:]]
runpy.run_module("agentflow.cli", run_name="__main__")
'''


def start_skewed_worker(db_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AGENTFLOW_TEST_LOG": str(log), "PYTHONPATH": str(REPO)}
    with open(log.parent / "workers.err", "ab") as err:
        return subprocess.Popen(
            [sys.executable, "-c", AHEAD, "worker", "--db", db_url,
             "--app", "tests.engine.workloads:engine", "--lease", "2", "--poll", "0.05"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)


async def test_a_worker_with_its_clock_ahead_takes_over_nothing_early(
        tmp_path: Path, db_url: str) -> None:
    log = tmp_path / "steps.log"
    count, steps = 12, 25
    workers = [start_worker(db_url, log, lease=2.0), start_skewed_worker(db_url, log),
               start_worker(db_url, log, lease=2.0)]
    try:
        await wait_for(lambda: _banners(tmp_path) >= len(workers), 60,
                       "every worker to start")
        client = Engine(db_url, run_scheduler=False)
        client.register("chain", chain)
        async with client:
            await client.binding("chain").create_batch(
                [{"id": f"k{i}", "params": {"steps": steps, "work": 0.01}}
                 for i in range(count)])
        await wait_for(lambda: all(s == "complete" for s, _ in statuses(db_url).values()),
                       120, "every instance to complete")
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(timeout=30) == 0
    committed = committed_steps(db_url)
    assert len(committed) == count * steps
    ran = Log.read(log)
    assert ran.starts() == count * steps, "a step body ran twice"
    check_invariants(ran, committed, killed=set())


def _banners(folder: Path) -> int:
    err = folder / "workers.err"
    return err.read_text().count("agentflow worker ") if err.exists() else 0
