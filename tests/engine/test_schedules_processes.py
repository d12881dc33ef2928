"""A schedule firing every second for a minute, with three worker processes of which
two are killed with SIGKILL along the way: every fire makes exactly one instance, and
(with ``catchup="all"``) no fire is missing."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agentflow import Engine
from agentflow._schedules import fire_instance_id

APP = '''
from agentflow import Engine

engine = Engine("memory://")  # only its workflows are used (the worker's --app)


@engine.workflow("tick")
async def tick(event, step):
    return await step.do("note", lambda: event.instance_id)
'''


def _worker(tmp_path: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agentflow", "worker", "--app", "tickapp:engine",
             "--isolation", "inline", "--lease", "2", "--db", url],
            cwd=tmp_path, stdout=out, stderr=out, env={**os.environ, "PYTHONPATH": str(
                Path(__file__).resolve().parents[2])})


async def _count(engine: Engine) -> int:
    return len(await engine.list_instances(workflow="tick", limit=1000))


async def _until(predicate: object, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("seconds", [60])
async def test_every_second_for_a_minute_with_three_workers_and_two_kills(
        tmp_path: Path, db_url: str, seconds: int) -> None:
    (tmp_path / "tickapp.py").write_text(APP)
    client = Engine(db_url, run_scheduler=False)
    async with client:
        start = math.floor(time.time()) + 4  # the workers are up by then
        sched = await client.schedules.create(
            "tick", workflow="tick", every=1, start=start, end=start + seconds - 1,
            catchup="all", overlap="allow")
        assert sched.next_fire_at == datetime.fromtimestamp(start, UTC)
        row = await client.store.get_schedule("", "tick")
        assert row is not None
        log = tmp_path / "workers.log"
        workers = [_worker(tmp_path, db_url, log) for _ in range(3)]
        try:
            # Kill two of them mid-run (at whatever point each happens to be: firing,
            # claiming, running a step), on progress rather than on a timer.
            await _until(lambda: _at_least(client, seconds // 4), "a quarter of the fires",
                         timeout=120)
            workers[0].send_signal(signal.SIGKILL)
            await _until(lambda: _at_least(client, seconds // 2), "half of the fires",
                         timeout=120)
            workers[1].send_signal(signal.SIGKILL)

            async def all_fired_and_done() -> bool:
                items = await client.list_instances(workflow="tick", limit=1000)
                return len(items) >= seconds and all(i.status == "complete" for i in items)
            await _until(all_fired_and_done, "every fire to run", timeout=150)
            assert (await client.schedules.get("tick")).next_fire_at is None  # it ended
        finally:
            for w in workers:
                if w.poll() is None:
                    w.send_signal(signal.SIGTERM)
            for w in workers:
                w.wait(timeout=60)
        assert [w.returncode for w in workers[:2]] == [-signal.SIGKILL] * 2, log.read_text()
        ids = sorted(i.id for i in await client.list_instances(workflow="tick", limit=1000))
        expected = sorted(fire_instance_id(row, start + k) for k in range(seconds))
        assert ids == expected  # exactly one instance per fire, and no fire missing
        for i in ids:  # each ran its plan to the end, with the fire's own id
            status = await (await client.get_instance(i)).status()
            assert status.output == i


async def _at_least(engine: Engine, n: int) -> bool:
    return await _count(engine) >= n
