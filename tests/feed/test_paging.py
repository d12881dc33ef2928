"""Keyset paging of instance listings: pages by ``(created_at, id)`` equal the offset
pages, also where many instances share one creation time."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow import Engine, ManualClock


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path}/paging.db"


async def test_keyset_pages_match_offset_pages(db_url: str) -> None:
    clock = ManualClock(start=1_800_000_000.0)
    engine = Engine(db_url, clock=clock, run_scheduler=False)

    async def never(event: object, step: object) -> None:
        raise AssertionError("nothing runs here")

    engine.register("w", never)  # type: ignore[arg-type]
    async with engine:
        for batch in range(5):  # 5 creation times, 50 instances each: ties everywhere
            await engine.binding("w").create_batch(
                [{"id": f"i{batch}-{k:02d}"} for k in range(50)])
            clock.advance(1)
        everything = await engine.store.list_instances(limit=1000)
        assert len(everything) == 250
        pages, before = [], None
        while True:
            page = await engine.store.list_instances(limit=40, before=before)
            if not page:
                break
            pages.extend(page)
            before = (page[-1].created_at, page[-1].id)
        assert [r.id for r in pages] == [r.id for r in everything]
        assert pages[0].id == "i4-00"  # newest first, ties by id


async def test_list_by_plan_name(db_url: str) -> None:
    from agentflow import AgentFlow

    async with AgentFlow(db_url, isolation="inline", run_scheduler=False) as flow:
        agent = flow.agent("a1")
        source = "async def run(event, step):\n    return 1\n"
        await agent.submit_plan("one", source)
        await agent.submit_plan("two", source)
        first = await agent.start("one")
        await agent.start("two")
        rows = await flow.engine.store.list_instances(plans=["one"])
        assert [r.id for r in rows] == [first.id]
        assert await flow.engine.store.list_instances(plans=[]) == []
