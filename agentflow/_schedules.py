"""Schedules: start a workflow (or an agent's plan) on a cron expression or an interval.

A schedule is a row in the store: when to fire (``cron`` in a ``timezone``, or ``every``
N seconds from ``start``), until when (``end``), the params, and two policies:

- ``overlap``: what a fire does while the instance of the previous fire has not
  finished: ``"skip"`` (default) drops it, ``"buffer_one"`` keeps one fire and starts it
  when the previous instance finishes (later ones are dropped), ``"allow"`` starts it.
- ``catchup``: what happens to fires missed while no process ran a scheduler (or the
  schedule was late): ``"latest"`` (default) starts one instance for the most recent
  missed fire, ``"all"`` starts one for each (at most `MAX_CATCHUP`, the latest, and
  after more than a week down only the last week's),
  ``"none"`` drops every fire more than `MISFIRE_GRACE_SECONDS` late.

**Exactly one instance per fire**, across any number of processes: every process that
runs a scheduler looks at due schedules; a fire's instance id is derived from the
schedule and the fire time (``<name>-<sid>-20260301T090000Z``), and a pass records the
instances it creates and the schedule's next fire time in one transaction, only if the
schedule's revision is still the one it read. A process that loses that race writes
nothing; one that dies in the middle wrote nothing either; and an instance id can only
be created once.

Fire times are workflow time (the engine's `Clock`), so a `ManualClock` test can walk a
daily schedule through a year of DST changes in milliseconds.

(Over 400 lines, on purpose: the cron parser lives in `_cron.py`; what stays here
is one state machine, a schedule's spec, its fire record and the firing loop, whose
revision rule only reads right in one place.)
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict

from agentflow._cron import CronExpression
from agentflow._durations import iso_datetime, parse_duration, parse_instant, to_datetime
from agentflow._limits import encode_value
from agentflow.errors import (
    InvalidArgumentError,
    LimitExceededError,
    NotFoundError,
    ScheduleNotFoundError,
)
from agentflow.models import TERMINAL_STATUSES
from agentflow.store import NewInstance, ScheduleFire, ScheduleRow

if TYPE_CHECKING:
    from agentflow._engine import Engine

__all__ = ["MAX_CATCHUP", "MISFIRE_GRACE_SECONDS", "Schedule", "ScheduleNotFoundError",
           "Schedules"]

log = logging.getLogger("agentflow.schedules")

#: At most this many missed fires start instances in one pass (``catchup="all"``).
MAX_CATCHUP = 1000
#: After a longer downtime only the fires of this last stretch are looked at (so
#: ``catchup="all"`` starts at most `MAX_CATCHUP` of those).
_LONG_GAP_SECONDS = 7 * 86400.0
#: With ``catchup="none"``, a fire later than this is dropped.
MISFIRE_GRACE_SECONDS = 60.0
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
_BATCH = 100

Overlap = Literal["skip", "buffer_one", "allow"]
Catchup = Literal["latest", "all", "none"]
#: ``(schedule, spec, pending)``: the payload of a fire's instance, ``pending`` being the
#: instances this pass creates before it (not stored yet).
PayloadFn = Callable[[ScheduleRow, dict[str, Any], int], Awaitable[str]]


class Schedule(BaseModel):
    """A schedule as its owner sees it."""

    model_config = ConfigDict(frozen=True)

    name: str
    agent: str | None = None  # None: a trusted workflow's schedule
    workflow: str
    plan: str | None = None
    cron: str | None = None
    every: float | None = None  # seconds
    timezone: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None
    params: Any = None
    overlap: Overlap = "skip"
    catchup: Catchup = "latest"
    paused: bool = False
    next_fire_at: datetime | None = None
    last_fire_at: datetime | None = None
    last_instance_id: str | None = None
    #: Fires it could not start (the agent's instance quota, its plan gone): how many,
    #: the last reason (``"LimitExceededError: ..."``) and when that fire came due.
    skipped_fires: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    created_at: datetime


class _Spec:
    """When a schedule fires: parsed once from the stored ``spec``."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.cron = CronExpression.parse(spec["cron"]) if spec.get("cron") else None
        self.every: float | None = spec.get("every")
        self.tz = ZoneInfo(spec.get("timezone") or "UTC")
        self.start: float | None = spec.get("start")
        self.end: float | None = spec.get("end")

    def next_after(self, t: float) -> float | None:
        """The first fire strictly after ``t`` (epoch seconds), within start and end."""
        if self.start is not None and t < self.start:
            t = self.start - 1e-6  # the start itself may fire
        if self.cron is not None:
            when = self.cron.next_after(datetime.fromtimestamp(t, UTC), self.tz)
            nxt = None if when is None else when.timestamp()
        else:
            assert self.every is not None
            anchor = self.start if self.start is not None else self.spec["anchor"]
            k = max(0, int((t - anchor) // self.every) + 1)
            nxt = anchor + k * self.every
            while nxt <= t:  # float rounding
                k += 1
                nxt = anchor + k * self.every
        if nxt is not None and self.end is not None and nxt > self.end:
            return None
        return nxt


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgumentError(f"time zone {name!r} is not known; use an IANA name "
                                   "such as 'Europe/Berlin' or 'UTC'") from None
    return name


def _instant(value: Any, zone: str, what: str) -> float:
    """Epoch seconds for ``start``/``end``: a datetime or an ISO 8601 string (naive ones
    are wall-clock times in the schedule's zone), or epoch seconds."""
    value = iso_datetime(value, what=what)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(zone))
    return parse_instant(value, what=what)


def fire_instance_id(row: ScheduleRow, fire_at: float) -> str:
    """The id of the instance a schedule's fire creates (the same in every process)."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", row.name)[:40]
    stamp = datetime.fromtimestamp(fire_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{safe}-{row.sid}-{stamp}"


def _public(row: ScheduleRow) -> Schedule:
    spec = json.loads(row.spec)
    dt = to_datetime
    return Schedule(
        name=row.name, agent=row.scope or None, workflow=row.workflow, plan=spec.get("plan"),
        cron=spec.get("cron"),
        every=spec.get("every"), timezone=spec.get("timezone") or "UTC",
        start=dt(spec["start"]) if spec.get("start") is not None else None,
        end=dt(spec["end"]) if spec.get("end") is not None else None,
        params=spec.get("params"), overlap=spec.get("overlap", "skip"),
        catchup=spec.get("catchup", "latest"), paused=row.paused,
        next_fire_at=dt(row.next_fire_at) if row.next_fire_at is not None else None,
        last_fire_at=dt(row.last_fire_at) if row.last_fire_at is not None else None,
        last_instance_id=row.last_instance_id, skipped_fires=row.skipped_fires,
        last_error=row.last_error,
        last_error_at=dt(row.last_error_at) if row.last_error_at is not None else None,
        created_at=dt(row.created_at))


class Schedules:
    """The schedules of one engine's database: create, list, pause, resume, delete, and
    (in a process that runs a scheduler) fire them. Reach it as ``engine.schedules``;
    an agent's own are ``agent.schedule(...)`` and friends.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._payloads: dict[str, PayloadFn] = {}
        self.changed = asyncio.Event()
        # Set by the engine's close() besides cancelling `run`: on Python 3.11,
        # asyncio.wait_for (used by psycopg_pool) can swallow a cancellation that races
        # its inner future, and the loop would then run on and hold close() forever.
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        """Make `run` return at its next turn (the engine is closing)."""
        self._stopped.set()

    def payload_builder(self, workflow: str, build: PayloadFn) -> None:
        """Build the payload of instances fired for ``workflow`` (the agent layer wraps
        params in the envelope of the plan's current version)."""
        self._payloads[workflow] = build

    # -- management --------------------------------------------------------------------
    async def create(self, name: str, *, workflow: str, cron: str | None = None,
                     every: Any = None, timezone: str = "UTC", start: Any = None,
                     end: Any = None, params: Any = None, overlap: Overlap = "skip",
                     catchup: Catchup = "latest", replace: bool = False,
                     scope: str = "", plan: str | None = None) -> Schedule:
        """Schedule ``workflow`` on a cron expression or an interval.

        Args:
            name: the schedule's name (1-64 of letters, digits, ``_ . -``), unique in
                its scope.
            workflow: the workflow each fire starts (for an agent's plan, the agent
                layer passes its own).
            cron: five cron fields evaluated in ``timezone`` (see `agentflow._cron`).
            every: an interval instead of ``cron`` (a duration, at least 1 second),
                counted from ``start`` (default: now).
            timezone: an IANA zone name for ``cron``.
            start: no fire before this: a datetime, an ISO 8601 string (a naive one is
                a wall-clock time in ``timezone``) or epoch seconds.
            end: no fire after this (same forms); the schedule then stays, with no
                next fire.
            params: each instance's params (JSON).
            overlap: ``"skip"``, ``"buffer_one"`` or ``"allow"`` (module docstring).
            catchup: ``"latest"``, ``"all"`` or ``"none"`` (module docstring).
            replace: replace a schedule of that name instead of refusing.

        Raises:
            InvalidArgumentError: a bad name, expression, zone, duration or policy, both
                or neither of ``cron`` and ``every``, or the name is taken.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidArgumentError(f"schedule name {name!r} is invalid: use 1 to 64 of "
                                       "letters, digits, '_', '.' and '-'")
        if (cron is None) == (every is None):
            raise InvalidArgumentError("give a schedule either cron='0 9 * * *' or "
                                       "every='1 hour', not both or neither")
        if overlap not in ("skip", "buffer_one", "allow"):
            raise InvalidArgumentError(f"overlap {overlap!r} must be 'skip', 'buffer_one' or "
                                       "'allow'")
        if catchup not in ("latest", "all", "none"):
            raise InvalidArgumentError(f"catchup {catchup!r} must be 'latest', 'all' or "
                                       "'none'")
        now = self._engine.clock.now()
        spec: dict[str, Any] = {"timezone": _zone(timezone), "overlap": overlap,
                                "catchup": catchup, "anchor": float(math.floor(now))}
        if cron is not None:
            spec["cron"] = CronExpression.parse(cron).text
        else:
            seconds = parse_duration(every, what="every")
            if seconds < 1:
                raise InvalidArgumentError(f"every={every!r} is under the 1 second minimum")
            spec["every"] = seconds
        if start is not None:
            spec["start"] = _instant(start, timezone, "start")
        if end is not None:
            spec["end"] = _instant(end, timezone, "end")
            if spec.get("start") is not None and spec["end"] < spec["start"]:
                raise InvalidArgumentError("the schedule's end is before its start")
        if plan is not None:
            spec["plan"] = plan
        spec["params"] = json.loads(encode_value(params, what=f"params of schedule {name!r}"))
        text = json.dumps(spec)
        # An interval counts from its start (which fires) or else from now (which does
        # not: `every="1 hour"` first fires in an hour); a cron time equal to now fires.
        first = _Spec(spec).next_after(now if cron is None and start is None else now - 1e-6)
        row = ScheduleRow(scope=scope, name=name, sid=uuid.uuid4().hex[:8], workflow=workflow,
                          spec=text, paused=False, next_fire_at=first, last_fire_at=None,
                          last_instance_id=None, buffered_fire_at=None, revision=0,
                          created_at=now, updated_at=now)
        if not await self._engine.store.put_schedule(row, replace=replace):
            raise InvalidArgumentError(f"a schedule named {name!r} exists already; delete it "
                                       "first or pass replace=True")
        self._engine.start_claiming()  # asks for progress: an on-demand engine fires too
        self._wake()
        return await self.get(name, scope=scope)

    async def get(self, name: str, *, scope: str = "") -> Schedule:
        return _public(await self._row(scope, name))

    async def list(self, *, scope: str | None = "") -> list[Schedule]:
        """Schedules of a scope (``""``: trusted workflows'; None: everyone's)."""
        return [_public(r) for r in await self._engine.store.list_schedules(scope)]

    async def delete(self, name: str, *, scope: str = "") -> None:
        """Delete a schedule. Instances it started are kept."""
        if not await self._engine.store.delete_schedule(scope, name):
            raise ScheduleNotFoundError(f"no schedule named {name!r}")

    async def pause(self, name: str, *, scope: str = "") -> Schedule:
        """Stop firing until `resume`. Fires while paused are not caught up."""
        await self._row(scope, name)
        await self._engine.store.set_schedule_paused(scope, name, True,
                                                     now=self._engine.clock.now(),
                                                     next_fire_at=None)
        return await self.get(name, scope=scope)

    async def resume(self, name: str, *, scope: str = "") -> Schedule:
        """Fire again, from the next fire time after now."""
        row = await self._row(scope, name)
        now = self._engine.clock.now()
        await self._engine.store.set_schedule_paused(
            scope, name, False, now=now,
            next_fire_at=_Spec(json.loads(row.spec)).next_after(now - 1e-6))
        self._engine.start_claiming()
        self._wake()
        return await self.get(name, scope=scope)

    async def next_fire_times(self, name: str, count: int = 5, *, scope: str = ""
                              ) -> builtins.list[datetime]:
        """The next ``count`` fire times (UTC), from the stored next fire on."""
        row = await self._row(scope, name)
        spec = _Spec(json.loads(row.spec))
        times: builtins.list[datetime] = []
        t = row.next_fire_at
        while t is not None and len(times) < count:
            times.append(to_datetime(t))
            t = spec.next_after(t)
        return times

    async def _row(self, scope: str, name: str) -> ScheduleRow:
        row = await self._engine.store.get_schedule(scope, name) if isinstance(
            name, str) else None
        if row is None:
            raise ScheduleNotFoundError(f"no schedule named {name!r}")
        return row

    def _wake(self) -> None:
        self.changed.set()

    # -- firing --------------------------------------------------------------------
    async def fire_due(self) -> builtins.list[str]:
        """Fire every due schedule once; returns the ids of the instances created."""
        store = self._engine.store
        created: builtins.list[str] = []
        for row in await store.due_schedules(self._engine.clock.now(), _BATCH):
            try:
                created.extend(await self._fire(row))
            except Exception:
                log.exception("schedule %r of %r: firing failed; trying again", row.name,
                              row.scope)
        if created:
            self._engine.nudge()
        return created

    async def _previous_active(self, instance_id: str | None) -> bool:
        if instance_id is None:
            return False
        prev = await self._engine.store.get_instance(instance_id)
        return prev is not None and prev.status not in TERMINAL_STATUSES

    async def _fire(self, row: ScheduleRow) -> builtins.list[str]:
        now = self._engine.clock.now()
        raw = json.loads(row.spec)
        spec = _Spec(raw)
        overlap, catchup = raw.get("overlap", "skip"), raw.get("catchup", "latest")
        fires: builtins.list[float] = []
        t = row.next_fire_at
        if t is not None and now - t > _LONG_GAP_SECONDS:
            # Down for long: walking every missed fire (a per-second schedule after a
            # month) would cost millions of steps, so look at the recent ones only.
            t = spec.next_after(max(t, now - _LONG_GAP_SECONDS))
        if t is not None and spec.every is not None:  # no older fire would be kept
            t = max(t, spec.next_after(now - (MAX_CATCHUP + 1) * spec.every) or t)
        while t is not None and t <= now:
            fires.append(t)
            t = spec.next_after(t)
            if len(fires) > MAX_CATCHUP:
                fires.pop(0)
        if catchup == "latest":
            fires = fires[-1:]
        elif catchup == "none":
            fires = [f for f in fires if now - f <= MISFIRE_GRACE_SECONDS]
        params = raw.get("params")
        last_id, last_at, buffered = row.last_instance_id, row.last_fire_at, row.buffered_fire_at
        active = await self._previous_active(last_id)
        starts: builtins.list[float] = []
        if buffered is not None and not active:
            starts.append(buffered)
            buffered, active = None, True
        for f in fires:
            if active and overlap == "skip":
                continue
            if active and overlap == "buffer_one":
                buffered = f if buffered is None else buffered
                continue
            starts.append(f)
            active = True
        news: builtins.list[NewInstance] = []
        refused: builtins.list[str] = []  # why fires of this pass could not start
        for f in starts:
            payload = await self._payload(row, params, len(news), refused)
            if payload is None:
                continue
            news.append(NewInstance(fire_instance_id(row, f), row.workflow, payload, now,
                                    row.scope or None))
            last_id, last_at = news[-1].id, f
        if t == row.next_fire_at and not starts and buffered == row.buffered_fire_at:
            return []  # a buffered fire still waits for its predecessor: nothing changes
        made = await self._engine.store.record_fire(ScheduleFire(
            scope=row.scope, name=row.name, revision=row.revision, next_fire_at=t,
            last_fire_at=last_at, last_instance_id=last_id, buffered_fire_at=buffered,
            instances=news, at=now, skipped=len(refused),
            error=refused[-1] if refused else None))
        return made or []

    async def _payload(self, row: ScheduleRow, params: Any, pending: int,
                       refused: builtins.list[str]) -> str | None:
        build = self._payloads.get(row.workflow)
        if build is None:
            return encode_value(params, what=f"params of schedule {row.name!r}")
        try:
            return await build(row, json.loads(row.spec), pending)
        except (NotFoundError, LimitExceededError) as exc:
            # The plan is gone, or the agent is at a quota: this fire is dropped (it
            # is not retried later), and the schedule goes on to its next fire. The
            # schedule counts it and keeps the reason, for its listing.
            log.warning("schedule %r of %r cannot fire: %s", row.name, row.scope, exc)
            refused.append(f"{type(exc).__name__}: {exc}"[:1000])
            return None

    async def run(self) -> None:
        """Fire schedules as they come due, say this process is alive, and apply the
        retention policies now and then (until cancelled). Run by every engine that
        runs a scheduler."""
        engine = self._engine
        store = engine.store
        beat_every = engine.lease_seconds / 3
        next_beat = 0.0
        poll = min(1.0, engine.poll_interval)
        me = asyncio.current_task()
        while not self._stopped.is_set():
            # A cancellation is delivered once; a database driver that swallows it
            # mid-call (seen with psycopg's pool) would leave this loop running and
            # `Engine.close` waiting for it forever. So look for it on every turn.
            if me is not None and me.cancelling():
                raise asyncio.CancelledError
            if time.monotonic() >= next_beat:
                try:
                    wall = time.time()
                    await store.worker_seen(engine.owner, now=wall,
                                            alive_until=wall + engine.lease_seconds)
                except Exception:
                    log.exception("recording this worker as alive failed; trying again")
                next_beat = time.monotonic() + beat_every
            self.changed.clear()
            try:
                await engine.retention.prune_if_due(time.monotonic())
            except Exception:
                log.exception("applying the retention policies failed; trying again later")
            try:
                await self.fire_due()
                due = await store.next_schedule_at()
            except Exception:
                log.exception("firing schedules failed; trying again")
                due = None
            waits: builtins.list[asyncio.Task[Any]] = [
                asyncio.create_task(self.changed.wait()),
                asyncio.create_task(self._stopped.wait()),
                asyncio.create_task(asyncio.sleep(poll))]
            if due is not None:
                waits.append(asyncio.create_task(engine.clock.sleep_until(due)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()


def describe_next(schedule: Schedule) -> str:
    """``in 3h (2026-03-01 09:00 UTC)`` or what stops it firing, for listings."""
    if schedule.paused:
        return "paused"
    if schedule.next_fire_at is None:
        return "ended"
    delta = schedule.next_fire_at - datetime.now(UTC)
    if delta < timedelta(0):
        return "due now"
    return schedule.next_fire_at.strftime("%Y-%m-%d %H:%M:%S UTC")
