"""A worker frozen past its lease (SIGSTOP, or plan code blocking the loop) never runs a
step body after another worker took the instance over: the later step's body runs
exactly once in all. Real processes, on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from agentflow import Engine
from tests.engine.harness import start_worker, statuses, wait_for
from tests.engine.workloads import freeze


@pytest.mark.parametrize("how", ["stop", "block"])
async def test_the_step_after_a_freeze_runs_once_in_all(tmp_path: Path, db_url: str,
                                                        how: str) -> None:
    log = tmp_path / "steps.log"
    client = Engine(db_url, run_scheduler=False)
    client.register("freeze", freeze)
    async with client:
        inst = await client.binding("freeze").create(
            params={"how": how, "seconds": 4.0}, id="frozen")
    first = start_worker(db_url, log, lease=1.0)
    second = None
    try:
        await wait_for(lambda: Path(f"{log}.froze").exists(), 60, "the first worker to freeze")
        # The first worker's one-second lease runs out while it is frozen: the second
        # takes the instance over and finishes it.
        second = start_worker(db_url, log, lease=1.0)
        await wait_for(lambda: statuses(db_url)["frozen"][0] == "complete", 60,
                       "the second worker to finish the instance")
        if how == "stop":
            first.send_signal(signal.SIGCONT)
        await wait_for(lambda: Path(f"{log}.resumed").exists(), 60,
                       "the first worker to wake up")
    finally:
        for worker in (first, second):
            if worker is not None:
                worker.send_signal(signal.SIGCONT)
                worker.send_signal(signal.SIGTERM)
        for worker in (first, second):
            if worker is not None:
                assert worker.wait(timeout=30) == 0
    runs = Path(f"{log}.after").read_text().split()
    assert runs == [str(second.pid)], f"the body of 'after' ran in {runs}"
    assert inst.id == "frozen"
