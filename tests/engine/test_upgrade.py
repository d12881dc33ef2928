"""A database written by an older agentflow opens with today's code and carries on.

The fixtures in tests/fixtures were written at schema version 2 (see
``make_schema_v2.py``): a SQLite file and a PostgreSQL dump, each holding an instance
waiting for an event, a sleeping one, a complete one, an errored one, and an agent plan
waiting for an approval. Every later schema change must keep these tests green.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from agentflow.testing import ManualClock
from tests.fixtures.schema_v2_app import (
    AGENT,
    COMPLETE,
    ERRORED,
    SLEEPING,
    WAITING,
    WRITTEN_AT,
    build,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DUMPED_SCHEMA = "agentflow_fixture_v2"


def restore_dump(url: str) -> None:
    """Load the PostgreSQL dump into the (empty) schema that ``url`` names."""
    with psycopg.connect(url, autocommit=True) as conn:
        (schema,) = conn.execute("SELECT current_schema()").fetchone() or ("",)
        lines = []
        for line in (FIXTURES / "schema_v2.pg.sql").read_text().splitlines():
            if line.startswith(("\\", "--")) or line.startswith("CREATE SCHEMA"):
                continue  # psql meta-commands, comments; the test's schema exists already
            lines.append(line.replace(f"{DUMPED_SCHEMA}.", f'"{schema}".'))
        conn.execute("\n".join(lines).encode())


@pytest.fixture(params=["sqlite", "postgresql"])
def old_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A copy of the schema-v2 fixture, as a URL."""
    if request.param == "postgresql":
        url = str(request.getfixturevalue("postgres_url"))
        restore_dump(url)
        return url
    path = tmp_path / "old.sqlite"
    shutil.copyfile(FIXTURES / "schema_v2.sqlite", path)
    return f"sqlite:///{path}"


async def test_the_old_database_opens_at_the_current_schema_and_keeps_every_row(
        old_db: str) -> None:
    from agentflow.store import open_store

    af = build(old_db, ManualClock(start=WRITTEN_AT), run_scheduler=False)
    async with af:
        store = af.engine.store
        assert await store.schema_version() == max(
            _versions(old_db))  # migrated to the newest version this code knows
        got = {s.id: s.status for s in await af.engine.list_instances()}
        assert got == {WAITING: "waiting", SLEEPING: "waiting", COMPLETE: "complete",
                       ERRORED: "errored", "fx-plan": "waiting"}
        assert [p.name for p in await af.agent(AGENT).plans()] == ["approve-me"]
    again = open_store(old_db)  # opening again migrates nothing and loses nothing
    await again.open()
    try:
        assert len(await again.list_instances()) == 5
    finally:
        await again.close()


def _versions(url: str) -> list[int]:
    if url.startswith("postgresql"):
        from agentflow.store._pg_migrations import MIGRATIONS as PG
        return [n for n, _ in PG]
    from agentflow.store._migrations import MIGRATIONS
    return [n for n, _ in MIGRATIONS]


async def test_old_instances_carry_on_and_finished_ones_stay_finished(old_db: str) -> None:
    clock = ManualClock(start=WRITTEN_AT + 60)
    effects: list[str] = []
    af = build(old_db, clock, effects=effects)
    async with af:
        engine = af.engine
        done_before = await (await engine.get_instance(COMPLETE)).history()
        failed_before = await (await engine.get_instance(ERRORED)).history()

        waiting = await engine.get_instance(WAITING)
        await waiting.send_event("go", {"n": 7})
        st = await waiting.wait(timeout=60)
        assert (st.status, st.output) == ("complete", {"before": 1, "got": {"n": 7},
                                                       "after": 2})

        sleeper = await engine.get_instance(SLEEPING)
        assert (await sleeper.wait(timeout=60)).status == "waiting"  # not yet an hour
        clock.advance("2 hours")
        st = await sleeper.wait(timeout=60)
        assert (st.status, st.output) == ("complete", "rested")

        agent = af.agent(AGENT)
        [pending] = await agent.pending_events()
        assert (pending.instance_id, pending.type, pending.step) == (
            "fx-plan", "approval", "person says")
        await agent.send_event("fx-plan", "approval", {"approved": True})
        st = await agent.wait("fx-plan", timeout=60)
        assert (st.status, st.output) == ("complete", {"approved": True, "item": "invoice 7"})

        done = await engine.get_instance(COMPLETE)
        assert ((await done.status()).status, (await done.status()).output) == ("complete", 42)
        assert await done.history() == done_before
        failed = await engine.get_instance(ERRORED)
        status = await failed.status()
        assert status.status == "errored"
        assert status.error is not None and "on purpose" in status.error["message"]
        assert await failed.history() == failed_before
    # Only the steps that had not run yet ran: nothing journaled ran again.
    assert sorted(effects) == ["after", "wake"]
