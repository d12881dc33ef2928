"""Crashes of real processes: SIGKILL in the middle of steps, and a fresh process
finishes every instance without running a committed step again. Each test runs on a
SQLite file and on PostgreSQL (the `db_url` fixture)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from agentflow import Engine
from tests.engine.harness import (
    Log,
    check_invariants,
    committed_steps,
    kill,
    query,
    run_chaos,
    start_worker,
    statuses,
    wait_for,
)
from tests.engine.workloads import chain


async def create_chains(db_url: str, count: int, steps: int) -> None:
    engine = Engine(db_url, run_scheduler=False)
    engine.register("chain", chain)
    async with engine:
        # Step bodies of different lengths keep the runners out of step with each
        # other: in lockstep (group commit lines them up) a kill could land while every
        # runner waits on the same commit, with no body in flight. One slow chain (a
        # quarter second a step) has a body in flight nearly all the time, however busy
        # the machine is.
        await engine.binding("chain").create_batch(
            [{"id": f"c{i}", "params": {"steps": steps, "work": 0.25 if i == 0 else
                                        0.002 + 0.0007 * (i % 5)}}
             for i in range(count)])


async def test_sigkill_mid_step_then_a_fresh_process_finishes(tmp_path: Path,
                                                              db_url: str) -> None:
    db = db_url
    log_path = tmp_path / "steps.log"
    count, steps = 20, 30
    await create_chains(db, count, steps)

    first = start_worker(db, log_path)
    await wait_for(lambda: Log.read(log_path).starts() >= 150, 30, "steps to run")
    kill(first)
    before = committed_steps(db)
    log_before = Log.read(log_path)
    assert 0 < len(before) < count * steps, "the kill must land mid-run"
    in_flight = [k for k, runs in log_before.runs.items() if k not in before]
    assert in_flight, "some step must have been running (uncommitted) at the kill"

    second = start_worker(db, log_path)
    try:
        await wait_for(lambda: all(s == "complete" for s, _ in statuses(db).values()), 60,
                       "all instances to complete")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=5) == 0

    final = statuses(db)
    assert len(final) == count
    assert all(out == str(sum(range(steps))) for _, out in final.values())
    log = Log.read(log_path)
    after = committed_steps(db)
    assert len(after) == count * steps
    for key, nonce in before.items():
        assert after[key] == nonce  # a committed result is never replaced
        assert all(run.pid == first.pid for run in log.runs[key]), (
            f"committed step {key} ran again in the fresh process")
    check_invariants(log, after, killed={first.pid})


async def test_chaos_several_workers_random_kills(tmp_path: Path, db_url: str) -> None:
    """Three workers share one database; random SIGKILLs hit them while they run."""
    report = await run_chaos(tmp_path, instances=30, steps=20, kills=4, url=db_url)
    assert report["kills"] == 4


async def test_sigterm_stops_a_busy_worker_within_a_second_and_hands_claims_back(
        tmp_path: Path, db_url: str) -> None:
    db = url = db_url
    log_path = tmp_path / "steps.log"
    await create_chains(url, 10, 200)
    worker = start_worker(url, log_path, lease=30.0)
    await wait_for(lambda: Log.read(log_path).starts() >= 50, 30, "steps to run")
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=5) == 0
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, elapsed
    [(leased,)] = query(db, "SELECT count(*) FROM instances WHERE lease_owner IS NOT NULL")
    [(running,)] = query(db, "SELECT count(*) FROM instances WHERE status = 'running'")
    assert leased == 0
    assert running == 0
    # With a 30 s lease, only the hand-back lets the next worker go on at once.
    second = start_worker(url, log_path, lease=30.0)
    try:
        await wait_for(lambda: all(s == "complete" for s, _ in statuses(db).values()), 60,
                       "all instances to complete")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=5)
    check_invariants(Log.read(log_path), committed_steps(db), killed=set())
