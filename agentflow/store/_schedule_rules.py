"""Transaction bodies (see ``_sql.py``) for schedules, live workers and retention.

Kept beside ``_rules.py`` rather than in it: they are the housekeeping around instances
(what fires them, who runs them, when they go), not the run's own rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentflow.store import _base as base
from agentflow.store._base import INSTANCE_KV_SCOPES
from agentflow.store._rules import create_instances
from agentflow.store._sql import MAX_VARS, Body, Do, Q, chunks, marks

SCHEDULE_COLUMNS = ("scope, name, sid, workflow, spec, paused, next_fire_at, last_fire_at,"
                    " last_instance_id, buffered_fire_at, revision, created_at, updated_at")
_READ_COLUMNS = SCHEDULE_COLUMNS + ", skipped_fires, last_error, last_error_at"


def _t(value: float | None) -> float | None:
    return None if value is None else float(value)


def _schedule(r: Sequence[Any]) -> base.ScheduleRow:
    return base.ScheduleRow(r[0], r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7], r[8],
                            r[9], r[10], r[11], r[12], skipped_fires=int(r[13]),
                            last_error=r[14], last_error_at=r[15])


# -- schedules -------------------------------------------------------------------------

def put_schedule(row: base.ScheduleRow, replace: bool) -> Body[bool]:
    # Replacing bumps the revision: a pass that read the old schedule cannot land.
    conflict = ("DO UPDATE SET sid = excluded.sid, workflow = excluded.workflow,"
                " spec = excluded.spec, paused = excluded.paused,"
                " next_fire_at = excluded.next_fire_at, last_fire_at = NULL,"
                " last_instance_id = NULL, buffered_fire_at = NULL, skipped_fires = 0,"
                " last_error = NULL, last_error_at = NULL,"
                " revision = schedules.revision + 1, created_at = excluded.created_at,"
                " updated_at = excluded.updated_at") if replace else "DO NOTHING"
    rows = yield Q(f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES"
                   f" (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, name)"
                   f" {conflict} RETURNING 1",
                   (row.scope, row.name, row.sid, row.workflow, row.spec, int(row.paused),
                    _t(row.next_fire_at), _t(row.last_fire_at), row.last_instance_id,
                    _t(row.buffered_fire_at), row.revision, float(row.created_at),
                    float(row.updated_at)))
    return bool(rows)


def get_schedule(scope: str, name: str) -> Body[base.ScheduleRow | None]:
    rows = yield Q(f"SELECT {_READ_COLUMNS} FROM schedules WHERE scope = ? AND name = ?",
                   (scope, name))
    return _schedule(rows[0]) if rows else None


def list_schedules(scope: str | None) -> Body[list[base.ScheduleRow]]:
    where, params = ("WHERE scope = ?", (scope,)) if scope is not None else ("", ())
    rows = yield Q(f"SELECT {_READ_COLUMNS} FROM schedules {where} ORDER BY scope, name",
                   params)
    return [_schedule(r) for r in rows]


def delete_schedule(scope: str, name: str) -> Body[bool]:
    rows = yield Q("DELETE FROM schedules WHERE scope = ? AND name = ? RETURNING 1",
                   (scope, name))
    return bool(rows)


def set_schedule_paused(scope: str, name: str, paused: bool, now: float,
                        next_fire_at: float | None) -> Body[bool]:
    sql = ("UPDATE schedules SET paused = ?, revision = revision + 1, updated_at = ?"
           + ("" if paused else ", next_fire_at = ?, buffered_fire_at = NULL")
           + " WHERE scope = ? AND name = ? RETURNING 1")
    params = (int(paused), float(now), *(() if paused else (_t(next_fire_at),)), scope, name)
    rows = yield Q(sql, params)
    return bool(rows)


def due_schedules(now: float, limit: int) -> Body[list[base.ScheduleRow]]:
    rows = yield Q(f"SELECT {_READ_COLUMNS} FROM schedules WHERE paused = 0 AND"
                   " (next_fire_at <= ? OR buffered_fire_at IS NOT NULL)"
                   " ORDER BY next_fire_at LIMIT ?", (float(now), limit))
    return [_schedule(r) for r in rows]


def next_schedule_at() -> Body[float | None]:
    rows = yield Q("SELECT min(next_fire_at) FROM schedules WHERE paused = 0")
    return None if not rows or rows[0][0] is None else float(rows[0][0])


def record_fire(fire: base.ScheduleFire) -> Body[list[str] | None]:
    """The fire's state and instances, only if the schedule's revision is unchanged:
    of several processes that read the same revision, one records the fire."""
    failed = fire.error is not None
    moved = yield Q(
        "UPDATE schedules SET next_fire_at = ?, last_fire_at = ?, last_instance_id = ?,"
        " buffered_fire_at = ?, revision = revision + 1, updated_at = ?,"
        " skipped_fires = skipped_fires + ?,"
        " last_error = CASE WHEN ? THEN ? ELSE last_error END,"
        " last_error_at = CASE WHEN ? THEN ? ELSE last_error_at END"
        " WHERE scope = ? AND name = ? AND revision = ? RETURNING 1",
        (_t(fire.next_fire_at), _t(fire.last_fire_at), fire.last_instance_id,
         _t(fire.buffered_fire_at), float(fire.at), int(fire.skipped), failed, fire.error,
         failed, float(fire.at), fire.scope, fire.name, fire.revision))
    if not moved:
        return None
    if not fire.instances:
        return []
    return (yield from create_instances(fire.instances))


# -- live workers ------------------------------------------------------------------------

def worker_seen(owner: str, now: float, alive_until: float) -> Body[None]:
    yield Do("INSERT INTO workers (owner, seen_at, alive_until) VALUES (?, ?, ?)"
             " ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at,"
             " alive_until = excluded.alive_until", (owner, float(now), float(alive_until)))
    # A killed process leaves its row behind: forget it a day later.
    yield Do("DELETE FROM workers WHERE alive_until < ?", (float(now) - 86400.0,))


def worker_gone(owner: str) -> Body[None]:
    yield Do("DELETE FROM workers WHERE owner = ?", (owner,))


def live_workers(now: float) -> Body[list[str]]:
    rows = yield Q("SELECT owner FROM workers WHERE alive_until >= ? ORDER BY owner",
                   (float(now),))
    return [str(r[0]) for r in rows]


# -- retention -----------------------------------------------------------------------------

def finished_instance_ids(statuses: Sequence[str], finished_before: float | None,
                          scopes: Sequence[str] | None, unscoped: bool,
                          exclude_scopes: Sequence[str], limit: int) -> Body[list[str]]:
    where = [f"status IN ({marks(statuses)})"]
    params: list[Any] = list(statuses)
    if finished_before is not None:
        where.append("updated_at < ?")
        params.append(float(finished_before))
    if unscoped:
        where.append("scope IS NULL")
    elif scopes is not None:
        where.append(f"scope IN ({marks(scopes)})" if scopes else "1 = 0")
        params.extend(scopes)
    if exclude_scopes:
        where.append(f"(scope IS NULL OR scope NOT IN ({marks(exclude_scopes)}))")
        params.extend(exclude_scopes)
    rows = yield Q(f"SELECT id FROM instances WHERE {' AND '.join(where)}"
                   " ORDER BY updated_at LIMIT ?", [*params, limit])
    return [str(r[0]) for r in rows]


def delete_instances(instance_ids: Sequence[str], statuses: Sequence[str] | None
                     ) -> Body[list[str]]:
    """Instances with their journal and events; with ``statuses``, only those still in
    one of them when the transaction reads them."""
    only = f" AND status IN ({marks(statuses)})" if statuses else ""
    deleted: list[str] = []
    for chunk in chunks(list(instance_ids),
                        MAX_VARS - max(len(statuses or ()), len(INSTANCE_KV_SCOPES))):
        rows = yield Q(f"DELETE FROM instances WHERE id IN ({marks(chunk)}){only}"
                       " RETURNING id", [*chunk, *(statuses or ())])
        ids = [str(r[0]) for r in rows]
        if ids:
            yield Do(f"DELETE FROM steps WHERE instance_id IN ({marks(ids)})", ids)
            yield Do(f"DELETE FROM events WHERE instance_id IN ({marks(ids)})", ids)
            # Key-value records kept per instance (its trace context) go with it.
            yield Do(f"DELETE FROM kv WHERE scope IN ({marks(INSTANCE_KV_SCOPES)})"
                     f" AND key IN ({marks(ids)})", [*INSTANCE_KV_SCOPES, *ids])
        deleted.extend(ids)
    return deleted


def get_retention() -> Body[dict[str, float]]:
    rows = yield Q("SELECT scope, keep_seconds FROM retention")
    return {str(r[0]): float(r[1]) for r in rows}


def set_retention(scope: str, keep_seconds: float | None, now: float) -> Body[None]:
    if keep_seconds is None:
        yield Do("DELETE FROM retention WHERE scope = ?", (scope,))
    else:
        yield Do("INSERT INTO retention (scope, keep_seconds, updated_at) VALUES (?, ?, ?)"
                 " ON CONFLICT (scope) DO UPDATE SET keep_seconds = excluded.keep_seconds,"
                 " updated_at = excluded.updated_at",
                 (scope, float(keep_seconds), float(now)))
