"""The change feed: every change, from any process, reaches a subscriber once and in
commit order, and a subscriber resumes from its cursor after a disconnect."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from agentflow import Change, Engine, InvalidArgumentError

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 3
PER_WRITER = 167  # each makes two changes per instance: 1,002 changes in all


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path}/feed.db"


async def _collect(engine: Engine, after: int, want: int, *, timeout: float = 90.0
                   ) -> list[Change]:
    seen: list[Change] = []

    async def read() -> None:
        async for change in engine.subscribe(after=after, workflows=["feed"], poll=0.02):
            seen.append(change)
            if len(seen) == want:
                return

    await asyncio.wait_for(read(), timeout)
    return seen


def _check_order(changes: list[Change]) -> None:
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "out of order or repeated"
    by_writer: dict[str, list[tuple[str, str]]] = {}
    for c in changes:
        by_writer.setdefault(c.instance_id.split("-")[0], []).append((c.instance_id, c.kind))
    for prefix, items in by_writer.items():
        expected = []
        for i in range(PER_WRITER):
            expected += [(f"{prefix}-{i:04d}", "created"), (f"{prefix}-{i:04d}", "status")]
        assert items == expected, f"writer {prefix}: changes lost, repeated or reordered"


async def test_changes_from_three_processes_arrive_in_order_none_lost(db_url: str) -> None:
    engine = Engine(db_url, run_scheduler=False)
    async with engine:
        start = await engine.store.last_change()
        procs = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.feed.writer", db_url, f"w{k}", str(PER_WRITER),
            cwd=ROOT) for k in range(WRITERS)]
        try:
            # The subscriber reads while the three writers write, and disconnects
            # half way through; a second subscription resumes at the cursor it kept.
            total = WRITERS * PER_WRITER * 2
            first = await _collect(engine, start, total // 2)
            cursor = first[-1].seq
            rest = await _collect(engine, cursor, total - len(first))
        finally:
            for p in procs:
                assert await asyncio.wait_for(p.wait(), 120) == 0
        changes = first + rest
        assert len(changes) == 1002
        _check_order(changes)
        assert all(c.status == "terminated" for c in changes if c.kind == "status")
        # Read again from the start: the same changes, numbered the same.
        again = await _collect(engine, start, total)
        assert [c.seq for c in again] == [c.seq for c in changes]


async def test_feed_reports_runs_steps_and_filters(db_url: str) -> None:
    engine = Engine(db_url)
    release = asyncio.Event()

    @engine.workflow("feed")
    async def flow(event, step):  # type: ignore[no-untyped-def]
        await step.do("first", lambda: 1)
        got = await step.wait_for_event("go", type="go", timeout=60)
        return got["payload"]

    del flow
    async with engine:
        a = await engine.binding("feed").create(id="a")
        b = await engine.binding("feed").create(id="b")
        seen: list[Change] = []

        async def watch() -> None:
            async for change in engine.subscribe(after=0, instance_ids=["a"], poll=0.02):
                seen.append(change)
                if change.kind == "status" and change.status == "waiting":
                    release.set()
                if change.status == "complete":
                    return

        task = asyncio.create_task(watch())
        await asyncio.wait_for(release.wait(), 60)
        await a.send_event("go", "done")
        await asyncio.wait_for(task, 60)
        assert {c.instance_id for c in seen} == {"a"}
        kinds = [(c.kind, c.step, c.status) for c in seen]
        assert kinds[0] == ("created", None, "queued")
        assert ("step", "first", "ok") in kinds
        assert kinds[-1] == ("status", None, "complete")
        assert (await b.status()).status in ("running", "waiting", "queued")


async def test_a_cursor_must_be_a_seq(engine: Engine) -> None:
    with pytest.raises(InvalidArgumentError, match="cursor"):
        async for _ in engine.subscribe(after=-1):
            pass


async def test_trimming_keeps_the_newest_and_cursors_carry_on(db_url: str) -> None:
    import time

    engine = Engine(db_url, run_scheduler=False)

    async def never(event: object, step: object) -> None:
        raise AssertionError("nothing runs here")

    engine.register("feed", never)  # type: ignore[arg-type]
    async with engine:
        for i in range(5):
            await engine.binding("feed").create(id=f"t{i}")
        last = await engine.store.last_change()
        assert await engine.store.trim_changes(time.time() + 60) >= 4  # all but the newest
        assert await engine.store.last_change() == last
        await engine.binding("feed").create(id="after")
        seen = []
        async for change in engine.subscribe(after=0, poll=0.02):
            seen.append(change)
            if change.instance_id == "after":
                break
        assert [c.seq for c in seen] == [last, last + 1]
