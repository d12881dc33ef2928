"""Schedules: cron and intervals in a time zone, overlap and catch-up policies, and one
instance per fire however many engines share the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agentflow import Engine
from agentflow._cron import CronExpression
from agentflow._schedules import ScheduleNotFoundError, fire_instance_id
from agentflow.errors import InvalidArgumentError
from agentflow.testing import ManualClock
from tests.conftest import eventually

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(*args: int, tz: ZoneInfo = BERLIN, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold)  # type: ignore[misc]


# -- the cron parser ----------------------------------------------------------------
@pytest.mark.parametrize(("text", "after", "expected"), [
    ("30 9 * * *", local(2026, 1, 1, 10), local(2026, 1, 2, 9, 30)),
    ("*/15 * * * *", local(2026, 1, 1, 10, 1), local(2026, 1, 1, 10, 15)),
    ("0 9-17/4 * * *", local(2026, 1, 1, 9), local(2026, 1, 1, 13)),
    ("0 0 * * mon-fri", local(2026, 1, 2, 12), local(2026, 1, 5)),  # Fri -> Mon
    ("0 0 1,15 feb *", local(2026, 1, 20), local(2026, 2, 1)),
    ("0 0 13 * 5", local(2026, 1, 1), local(2026, 1, 2)),  # the 13th OR a Friday
    ("0 12 * * 7", local(2026, 1, 1), local(2026, 1, 4, 12)),  # 7 is Sunday too
    ("@monthly", local(2026, 1, 5), local(2026, 2, 1)),
    ("0 0 29 2 *", local(2026, 1, 1), local(2028, 2, 29)),
])
def test_cron_next_fire(text: str, after: datetime, expected: datetime) -> None:
    assert CronExpression.parse(text).next_after(after, BERLIN) == expected.astimezone(UTC)


@pytest.mark.parametrize("text", ["* * * *", "60 * * * *", "0 24 * * *", "0 0 0 * *",
                                  "0 0 * 13 *", "0 0 * * 8", "0 0 * foo *", "5-1 * * * *",
                                  "*/0 * * * *", "0 0 30 2 *", "1,,2 * * * *"])
def test_cron_refuses_bad_expressions(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="cron"):
        CronExpression.parse(text)


def test_cron_dst_gap_fires_after_the_gap_and_an_ambiguous_time_once() -> None:
    cron = CronExpression.parse("30 2 * * *")
    # Berlin springs forward on 2026-03-29 at 02:00 -> 03:00: 02:30 does not exist.
    spring = cron.next_after(local(2026, 3, 28, 12), BERLIN)
    assert spring == local(2026, 3, 29, 3, 0).astimezone(UTC)
    # It falls back on 2026-10-25 at 03:00 -> 02:00: 02:30 happens twice, fires once.
    first = cron.next_after(local(2026, 10, 24, 12), BERLIN)
    assert first == local(2026, 10, 25, 2, 30, fold=0).astimezone(UTC)
    assert first is not None
    assert cron.next_after(first, BERLIN) == local(2026, 10, 26, 2, 30).astimezone(UTC)


# -- schedules on an engine ----------------------------------------------------------
async def _engine_with_report(url: str, clock: ManualClock) -> Engine:
    engine = Engine(url, clock=clock)

    @engine.workflow("report")
    async def report(event, step):  # type: ignore[no-untyped-def]
        return event.payload

    return engine


async def test_a_daily_schedule_over_a_year_of_dst_changes() -> None:
    """Every local day of a year gets exactly one instance at 09:30 Berlin time, across
    both DST changes; the ids carry the fire time."""
    start = local(2026, 1, 1, 0, 0)
    clock = ManualClock(start=start)
    engine = await _engine_with_report("memory://", clock)
    async with engine:
        sched = await engine.schedules.create("morning", workflow="report",
                                              cron="30 9 * * *", timezone="Europe/Berlin",
                                              params={"n": 1})
        assert sched.next_fire_at == local(2026, 1, 1, 9, 30).astimezone(UTC)
        day = start.date()
        seen: list[datetime] = []
        for _ in range(365):
            fire = local(day.year, day.month, day.day, 9, 30)
            clock.set(fire + timedelta(minutes=1))

            async def fired(fire: datetime = fire) -> bool:
                return any(i.id.endswith(fire.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
                           for i in await engine.list_instances(workflow="report", limit=3))
            await eventually(fired, timeout=30, what=f"the fire of {fire}")
            seen.append(fire)
            day += timedelta(days=1)
        instances = await engine.list_instances(workflow="report", limit=1000)
        assert len(instances) == 365
        stamps = sorted(i.id.rsplit("-", 1)[1] for i in instances)
        times = [datetime.strptime(s, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) for s in stamps]
        assert [t.astimezone(BERLIN).strftime("%H:%M") for t in times] == ["09:30"] * 365
        assert len({t.astimezone(BERLIN).date() for t in times}) == 365
        # The UTC hour moves with DST: 08:30 UTC in winter, 07:30 UTC in summer.
        assert {t.hour for t in times} == {7, 8}


async def test_interval_catchup_and_overlap_policies() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    engine = Engine("memory://", clock=clock)

    @engine.workflow("slow")
    async def slow(event, step):  # type: ignore[no-untyped-def]
        await step.wait_for_event("go", type="go", timeout="1 day")
        return 1

    async with engine:
        s = engine.schedules
        await s.create("all", workflow="slow", every=60, catchup="all", overlap="allow")
        await s.create("latest", workflow="slow", every=60, catchup="latest",
                       overlap="allow")
        await s.create("none", workflow="slow", every=60, catchup="none", overlap="allow")
        await s.create("skip", workflow="slow", every=60, overlap="skip", catchup="all")
        await s.create("buffer", workflow="slow", every=60, overlap="buffer_one",
                       catchup="all")
        clock.advance(60 * 5 + 1)  # five fires missed at once
        await s.fire_due()

        async def count(prefix: str) -> int:
            return len([i for i in await engine.list_instances(limit=1000)
                        if i.id.startswith(prefix + "-")])
        assert await count("all") == 5
        assert await count("latest") == 1
        assert await count("none") == 1  # only the last fire is under a minute late
        assert await count("skip") == 1
        assert await count("buffer") == 1
        buffered = [i for i in await engine.list_instances(limit=1000)
                    if i.id.startswith("buffer-")]
        await engine.get_instance(buffered[0].id)
        # Finish the running "buffer" instance: the buffered fire starts next.
        await eventually(lambda: _waiting(engine, buffered[0].id), timeout=30)
        inst = await engine.get_instance(buffered[0].id)
        await inst.send_event("go")
        await eventually(lambda: _status(engine, buffered[0].id, "complete"), timeout=30)
        await s.fire_due()
        assert await count("buffer") == 2


async def _status(engine: Engine, instance_id: str, wanted: str) -> bool:
    return (await (await engine.get_instance(instance_id)).status()).status == wanted


async def _waiting(engine: Engine, instance_id: str) -> bool:
    return await _status(engine, instance_id, "waiting")


async def test_pause_resume_delete_list_and_next_fire_times() -> None:
    clock = ManualClock(start=local(2026, 3, 27, 12))
    engine = await _engine_with_report("memory://", clock)
    async with engine:
        s = engine.schedules
        await s.create("nightly", workflow="report", cron="30 2 * * *",
                       timezone="Europe/Berlin")
        times = await s.next_fire_times("nightly", 3)
        assert times == [local(2026, 3, 28, 2, 30).astimezone(UTC),
                         local(2026, 3, 29, 3, 0).astimezone(UTC),  # the DST gap
                         local(2026, 3, 30, 2, 30).astimezone(UTC)]
        with pytest.raises(InvalidArgumentError, match="exists already"):
            await s.create("nightly", workflow="report", every=60)
        paused = await s.pause("nightly")
        assert paused.paused
        clock.advance("2 days")
        assert await s.fire_due() == []  # paused: nothing fires, nothing is caught up
        resumed = await s.resume("nightly")
        assert resumed.next_fire_at is not None
        assert resumed.next_fire_at > datetime.fromtimestamp(clock.now(), UTC)
        assert [x.name for x in await s.list()] == ["nightly"]
        await s.delete("nightly")
        assert await s.list() == []
        with pytest.raises(ScheduleNotFoundError):
            await s.pause("nightly")


async def test_start_and_end_bound_the_fires() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    engine = await _engine_with_report("memory://", clock)
    async with engine:
        s = engine.schedules
        sched = await s.create("window", workflow="report", every=10, catchup="all",
                               overlap="allow", start=1_800_000_100.0, end=1_800_000_130.0)
        assert sched.next_fire_at == datetime.fromtimestamp(1_800_000_100.0, UTC)
        clock.advance(1000)
        await s.fire_due()  # (the engine's own loop may have fired them first)
        stamps = sorted(i.id.rsplit("-", 1)[1] for i in await engine.list_instances())
        assert stamps == [datetime.fromtimestamp(1_800_000_000.0 + k, UTC).strftime(
            "%Y%m%dT%H%M%SZ") for k in (100, 110, 120, 130)]
        assert (await s.get("window")).next_fire_at is None


async def test_two_engines_on_one_file_fire_each_time_once(db_url: str) -> None:
    """Several engines race for every fire: each fire still makes one instance."""
    clock = ManualClock(start=1_800_000_000.0)
    engines = [await _engine_with_report(db_url, clock) for _ in range(3)]
    for e in engines:
        await e.start()
    try:
        await engines[0].schedules.create("tick", workflow="report", every=1,
                                          catchup="all", overlap="allow")
        row = await engines[0].store.get_schedule("", "tick")
        assert row is not None
        for _ in range(20):
            clock.advance(1)
            for e in engines:
                await e.schedules.fire_due()
        ids = sorted(i.id for i in await engines[0].list_instances(workflow="report",
                                                                   limit=1000))
        expected = sorted(fire_instance_id(row, 1_800_000_001.0 + k) for k in range(20))
        assert ids == expected
    finally:
        for e in engines:
            await e.close()


async def test_a_long_downtime_looks_only_at_the_last_week() -> None:
    """A per-second schedule after 30 days down: the pass does not walk 2.6 million
    missed fires; "latest" starts the latest, "all" the latest MAX_CATCHUP."""
    from agentflow._schedules import MAX_CATCHUP

    clock = ManualClock(start=1_800_000_000.0)
    engine = await _engine_with_report("memory://", clock)
    engine.run_scheduler = False  # only this test's passes fire
    async with engine:
        s = engine.schedules
        await s.create("latest", workflow="report", every=1, overlap="allow")
        await s.create("all", workflow="report", every=1, overlap="allow", catchup="all")
        clock.advance("30 days")
        await s.fire_due()
        ids = [i.id for i in await engine.list_instances(limit=5000)]
        assert len([i for i in ids if i.startswith("latest-")]) == 1
        assert len([i for i in ids if i.startswith("all-")]) == MAX_CATCHUP
        last = datetime.fromtimestamp(clock.now(), UTC).strftime("%Y%m%dT%H%M%SZ")
        assert any(i.startswith("latest-") and i.endswith(last) for i in ids)
