"""The store's rules as transaction bodies (see ``_sql.py`` for how bodies run).

Each function is a generator that yields statements and returns the operation's
result; ``SQLStore`` (``_sqlstore.py``) runs them through a backend's driver. Kept
apart from the driver-facing class so that every rule of the contract in ``_base.py``
reads in one place: claims, leases and their hand-back, fenced group commits, pause at
a step boundary, events and their consumption, plan versions, kv.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agentflow.store import _base as base
from agentflow.store._sql import (
    INSTANCE_COLUMNS,
    MAX_VARS,
    NOTIFY,
    STEP_COLUMNS,
    Body,
    Dialect,
    Do,
    Many,
    Q,
    chunks,
    lease_times,
    marks,
)


def _time(value: float | None) -> float | None:
    return None if value is None else float(value)


def _instance(row: Sequence[Any]) -> base.InstanceRow:
    return base.InstanceRow(*row)


# -- instances ---------------------------------------------------------------------

def get_instance(instance_id: str, *, lock: str = "") -> Body[base.InstanceRow | None]:
    rows = yield Q(f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ?{lock}",
                   (instance_id,))
    return _instance(rows[0]) if rows else None


def create_instances(rows: Sequence[base.NewInstance]) -> Body[list[str]]:
    fresh: dict[str, base.NewInstance] = {}
    for r in rows:
        fresh.setdefault(r.id, r)
    made: set[str] = set()
    for chunk in chunks(list(fresh.values()), MAX_VARS // 7):
        got = yield Q(
            "INSERT INTO instances (id, workflow, status, payload, created_at, updated_at,"
            " due_at, fence, scope) VALUES "
            + ",".join(["(?, ?, 'queued', ?, ?, ?, ?, 0, ?)"] * len(chunk))
            + " ON CONFLICT (id) DO NOTHING RETURNING id",
            [v for r in chunk for v in (r.id, r.workflow, r.payload, float(r.created_at),
                                        float(r.created_at), float(r.created_at), r.scope)])
        made.update(g[0] for g in got)
    if made:
        yield NOTIFY
    return [i for i in fresh if i in made]


def check_scope_quota(quota: base.ScopeQuota, adding: int) -> Body[None]:
    """Raise `ScopeQuotaRefused` if ``adding`` more instances would exceed ``quota``."""
    statuses = list(quota.active_statuses)
    rows = yield Q(f"SELECT count(*), coalesce(sum(CASE WHEN status IN ({marks(statuses)})"
                   f" THEN 1 ELSE 0 END), 0) FROM instances WHERE scope = ?",
                   [*statuses, quota.scope])
    total, active = int(rows[0][0]) + adding, int(rows[0][1]) + adding
    if active > quota.max_active:
        raise base.ScopeQuotaRefused("active", active, quota.max_active)
    if total > quota.max_total:
        raise base.ScopeQuotaRefused("total", total, quota.max_total)


def list_instances(d: Dialect, workflows: Sequence[str] | None,
                   statuses: Sequence[str] | None, scopes: Sequence[str] | None,
                   limit: int, offset: int, before: tuple[float, str] | None = None,
                   plans: Sequence[str] | None = None) -> Body[list[base.InstanceRow]]:
    where: list[str] = []
    params: list[Any] = []
    for column, values in (("workflow", workflows), ("status", statuses),
                           ("scope", scopes), (d.plan_of_payload, plans)):
        if values is not None:
            where.append(f"{column} IN ({marks(values)})" if values else "1 = 0")
            params.extend(values)
    if before is not None:  # keyset paging: the rows after this key in the order below
        # (the first term alone bounds an index range; an OR at the top would not)
        where.append("created_at <= ? AND (created_at < ? OR id > ?)")
        params.extend([float(before[0]), float(before[0]), before[1]])
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = yield Q(f"SELECT {INSTANCE_COLUMNS} FROM instances {clause}"
                   " ORDER BY created_at DESC, id LIMIT ? OFFSET ?", [*params, limit, offset])
    return [_instance(r) for r in rows]


def transition(d: Dialect, instance_id: str,
               decide: Callable[[base.InstanceRow], base.InstanceChange | None]
               ) -> Body[base.InstanceRow | None]:
    row = yield from get_instance(instance_id, lock=d.for_update)
    if row is None:
        return None
    change = decide(row)
    if change is None:
        return row
    yield from apply_change(row, change)
    return (yield from get_instance(instance_id))


def apply_change(row: base.InstanceRow, change: base.InstanceChange) -> Body[None]:
    """Write ``change`` to ``row``'s instance (the caller holds the row)."""
    sets: list[str] = ["updated_at = ?"]
    params: list[Any] = [float(max(row.updated_at, change.at))]
    for column in ("status", "payload"):
        value = getattr(change, column)
        if value is not None:
            sets.append(f"{column} = ?")
            params.append(value)
    for column in ("due_at", "output", "error", "waiting_on"):
        value = getattr(change, column)
        if value is not ...:
            sets.append(f"{column} = ?")
            params.append(_time(value) if column == "due_at" else value)
    if change.bump_fence:
        sets.append("fence = fence + 1")
    if change.clear_lease:
        sets.append("lease_owner = NULL, lease_until = NULL")
    yield Do(f"UPDATE instances SET {', '.join(sets)} WHERE id = ?", [*params, row.id])
    if change.delete_steps_from is not None:
        # The dropped run's consumed events go with its steps, and so does every event
        # not consumed yet: it was sent to the run being replaced.
        yield Do("DELETE FROM events WHERE instance_id = ? AND (consumed_seq >= ?"
                 " OR consumed_seq IS NULL)", (row.id, change.delete_steps_from))
        yield Do("DELETE FROM steps WHERE instance_id = ? AND seq >= ?",
                 (row.id, change.delete_steps_from))
    if change.due_at is not ... and change.due_at is not None:
        yield NOTIFY  # it is due (now or later): someone must look


# -- scheduling ----------------------------------------------------------------------

def claim_due_instances(d: Dialect, owner: str, workflows: Sequence[str], now: float,
                        lease_now: float | None, lease_until: float | None,
                        lease_seconds: float | None, limit: int
                        ) -> Body[list[base.InstanceRow]]:
    """One statement: pick the due, unleased rows and claim them.

    An instance whose holder died while it was ``waiting_for_pause`` is paused here
    instead of claimed. Being one statement, a claim whose COMMIT was lost may simply be
    run again: the first one's instances then wait out their lease, which is safe.
    """
    pausing = "status = 'waiting_for_pause'"
    now_sql, until_sql, times = lease_times(d, lease_now, lease_until, lease_seconds)
    lease_params = times[:1] if len(times) == 2 else []
    until_params = times[1:] if len(times) == 2 else times
    rows = yield Q(
        f"WITH due AS (SELECT id AS due_id FROM instances{d.due_index} WHERE due_at <= ?"
        f" AND workflow IN ({marks(workflows)})"
        f" AND (lease_until IS NULL OR lease_until < {now_sql}) ORDER BY due_at LIMIT ?"
        f"{d.skip_locked})"
        f" UPDATE instances SET"
        f" status = CASE WHEN {pausing} THEN 'paused' ELSE 'running' END,"
        f" lease_owner = CASE WHEN {pausing} THEN NULL ELSE ? END,"
        f" lease_until = CASE WHEN {pausing} THEN NULL ELSE {until_sql} END,"
        f" due_at = CASE WHEN {pausing} THEN NULL ELSE due_at END,"
        f" fence = fence + 1, updated_at = ?, slot_wait_since = NULL"
        f" FROM due WHERE id = due_id"
        f" RETURNING {INSTANCE_COLUMNS}",
        [float(now), *workflows, *lease_params, limit, owner, *until_params, float(now)])
    claimed = [_instance(r) for r in rows if r[2] == "running"]
    claimed.sort(key=lambda r: (r.due_at if r.due_at is not None else 0.0, r.id))
    return claimed


def next_due_at(d: Dialect, workflows: Sequence[str], lease_now: float | None
                ) -> Body[float | None]:
    now_sql, params = ("?", [float(lease_now)]) if lease_now is not None else (d.db_now, [])
    rows = yield Q(f"SELECT due_at FROM instances{d.due_index} WHERE due_at IS NOT NULL"
                   f" AND workflow IN ({marks(workflows)})"
                   f" AND (lease_until IS NULL OR lease_until < {now_sql})"
                   " ORDER BY due_at LIMIT 1", [*workflows, *params])
    return None if not rows else float(rows[0][0])


def renew_leases(d: Dialect, owner: str, instance_ids: Sequence[str],
                 lease_until: float | None, lease_seconds: float | None) -> Body[list[str]]:
    """Extend the leases this owner still holds; returns the ids it renewed."""
    if lease_until is not None:
        until_sql, params = "?", [float(lease_until)]
    else:
        _, until_sql, params = lease_times(d, None, None, lease_seconds)
    renewed: list[str] = []
    for chunk in chunks(sorted(instance_ids)):
        rows = yield Q(f"UPDATE instances SET lease_until = {until_sql} WHERE lease_owner = ?"
                       f" AND id IN ({marks(chunk)}) RETURNING id", [*params, owner, *chunk])
        renewed += [r[0] for r in rows]
    return renewed


def release_leases(owner: str, instance_ids: Sequence[str], now: float) -> Body[None]:
    """Hand claims back: running ones become queued and due now; the fence moves on."""
    for chunk in chunks(sorted(instance_ids)):
        yield Do("UPDATE instances SET lease_owner = NULL, lease_until = NULL,"
                 " fence = fence + 1, due_at = CASE WHEN status IN ('running',"
                 " 'waiting_for_pause') THEN ? ELSE due_at END,"
                 " status = CASE WHEN status = 'running' THEN 'queued' ELSE status END"
                 f" WHERE lease_owner = ? AND id IN ({marks(chunk)})",
                 [float(now), owner, *chunk])
    yield NOTIFY


# -- journal and events ----------------------------------------------------------------

def load_journal(instance_id: str) -> Body[list[base.JournalRow]]:
    rows = yield Q(f"SELECT {STEP_COLUMNS} FROM steps WHERE instance_id = ? ORDER BY seq",
                   (instance_id,))
    return [base.JournalRow(*r) for r in rows]


def write_batch(d: Dialect, commits: list[base.RunCommit]) -> Body[list[base.CommitResult]]:
    """Apply many runners' commits in one transaction, each whole or not at all.

    The instances' rows are locked first, in id order so that two batches cannot
    deadlock; a commit whose fence moved on writes nothing. Neither does one that would
    consume an event that is consumed already (by another process's wait, or by an
    earlier commit of this batch: two waits of one ``gather``): an event completes at
    most one wait.
    """
    ids = sorted({c.instance_id for c in commits})
    wanted = sorted({e for c in commits for e, _ in c.consumed_events})
    fences = [Q(f"SELECT id, fence, status FROM instances WHERE id IN ({marks(chunk)})"
                f" ORDER BY id{d.for_update}", chunk) for chunk in chunks(ids)]
    events = [Q(f"SELECT id, consumed_seq FROM events WHERE id IN ({marks(chunk)})"
                f"{d.for_update}", chunk) for chunk in chunks(wanted)]
    answers = yield (*fences, *events)  # sent at once: one round trip for all of them
    current: dict[str, tuple[int, str]] = {
        r[0]: (r[1], r[2]) for rows in answers[:len(fences)] for r in rows}
    consumed_by: dict[int, int | None] = {
        r[0]: r[1] for rows in answers[len(fences):] for r in rows}
    accepted: list[base.RunCommit] = []
    taken: dict[int, tuple[int, ...]] = {}  # index of a refused commit -> its taken events
    for i, c in enumerate(commits):
        if current.get(c.instance_id, (None,))[0] != c.fence:
            continue
        # A wait may consume an event that no one consumed, or that its own position
        # consumed already (the same commit written again after a lost COMMIT).
        lost = tuple(e for e, seq in c.consumed_events
                     if e not in consumed_by or consumed_by[e] not in (None, seq))
        if lost:
            taken[i] = lost
            continue
        consumed_by.update({e: seq for e, seq in c.consumed_events})
        accepted.append(c)
    steps = [(c.instance_id, s.seq, s.name, s.n, s.kind, s.status, s.attempts,
              float(s.started_at), s.result, s.error, _time(s.finished_at), _time(s.wake_at),
              s.detail)
             for c in accepted for s in c.steps]
    if steps:
        yield Many(f"INSERT INTO steps (instance_id, {STEP_COLUMNS}) VALUES"
                   " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id, seq)"
                   " DO UPDATE SET name = excluded.name, n = excluded.n,"
                   " kind = excluded.kind, status = excluded.status,"
                   " attempts = excluded.attempts, started_at = excluded.started_at,"
                   " result = excluded.result, error = excluded.error,"
                   " finished_at = excluded.finished_at, wake_at = excluded.wake_at,"
                   " detail = excluded.detail", steps)
    consumed = [(seq, event_id) for c in accepted for event_id, seq in c.consumed_events]
    if consumed:
        yield Many("UPDATE events SET consumed_seq = ? WHERE id = ?", consumed)
    finishing = [c for c in accepted if c.finish is not None]
    buffered: set[tuple[str, str]] = set()
    waiters = sorted({c.instance_id for c in finishing if c.finish and c.finish.wake_types})
    for chunk in chunks(waiters):  # read after this batch's consumptions are applied
        rows = yield Q("SELECT DISTINCT instance_id, type FROM events WHERE consumed_seq"
                       f" IS NULL AND instance_id IN ({marks(chunk)})", chunk)
        buffered.update((r[0], r[1]) for r in rows)
    updates = []
    wakes_someone = False
    for c in finishing:
        f = c.finish
        assert f is not None
        status, due_at = f.status, f.due_at
        if any((c.instance_id, t) in buffered for t in f.wake_types):
            status, due_at = "queued", f.at  # an awaited event is already here: run again
        if current[c.instance_id][1] == "waiting_for_pause" and status in ("waiting",
                                                                             "queued"):
            status, due_at = "paused", None
        wakes_someone = wakes_someone or due_at is not None
        updates.append((status, f.output, f.error, f.waiting_on, _time(due_at), float(f.at),
                        c.instance_id, c.fence))
        current[c.instance_id] = (c.fence, status)
    if updates:
        yield Many("UPDATE instances SET status = ?, output = ?, error = ?, waiting_on = ?,"
                   f" due_at = ?, updated_at = {d.greatest}(?, updated_at),"
                   " lease_owner = NULL, lease_until = NULL WHERE id = ? AND fence = ?",
                   updates)
    if wakes_someone:  # a timer or a wake-up: other workers must recompute their sleep
        yield NOTIFY
    return [base.CommitResult(
        ok=current.get(c.instance_id, (None,))[0] == c.fence and i not in taken,
        status=current.get(c.instance_id, (None, None))[1], taken=taken.get(i, ()))
        for i, c in enumerate(commits)]


def add_event(d: Dialect, instance_id: str, type: str, payload: str, now: float,
              decide: Callable[[base.InstanceRow], base.InstanceChange | None]) -> Body[bool]:
    row = yield from get_instance(instance_id, lock=d.for_update)
    if row is None:
        return False
    change = decide(row)
    yield Do("INSERT INTO events (instance_id, type, payload, created_at)"
             " VALUES (?, ?, ?, ?)", (instance_id, type, payload, float(now)))
    if change is not None:
        yield from apply_change(row, change)
    return True


def pending_events(instance_id: str, type: str, exclude: Sequence[int], limit: int
                   ) -> Body[list[base.EventRow]]:
    skip = f" AND id NOT IN ({marks(exclude)})" if exclude else ""
    rows = yield Q("SELECT id, instance_id, type, payload, created_at FROM events"
                   f" WHERE instance_id = ? AND type = ? AND consumed_seq IS NULL{skip}"
                   " ORDER BY id LIMIT ?", [instance_id, type, *exclude, limit])
    return [base.EventRow(*r) for r in rows]


# -- plan versions and key-value ---------------------------------------------------------

_PLAN_SELECT = ("SELECT v.scope, v.name, v.version, v.source, v.created_at, v.created_by,"
                " CASE WHEN p.current_version = v.version THEN 1 ELSE 0 END"
                " FROM plan_versions v")


def _plan_row(r: Sequence[Any]) -> base.PlanRow:
    return base.PlanRow(r[0], r[1], r[2], r[3], r[4], r[5], current=bool(r[6]))


def get_plan_version(scope: str, name: str, version: str | None) -> Body[base.PlanRow | None]:
    if version is None:
        rows = yield Q(f"{_PLAN_SELECT} JOIN plans p ON p.scope = v.scope"
                       " AND p.name = v.name AND p.current_version = v.version"
                       " WHERE v.scope = ? AND v.name = ?", (scope, name))
    else:
        rows = yield Q(f"{_PLAN_SELECT} LEFT JOIN plans p ON p.scope = v.scope"
                       " AND p.name = v.name WHERE v.scope = ? AND v.name = ?"
                       " AND v.version = ?", (scope, name, version))
    return _plan_row(rows[0]) if rows else None


def put_plan_version(plan: base.PlanRow) -> Body[base.PlanRow]:
    yield Do("INSERT INTO plan_versions (scope, name, version, source, created_at,"
             " created_by) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
             (plan.scope, plan.name, plan.version, plan.source, float(plan.created_at),
              plan.created_by))
    yield Do("INSERT INTO plans (scope, name, current_version, updated_at)"
             " VALUES (?, ?, ?, ?) ON CONFLICT (scope, name) DO UPDATE SET"
             " current_version = excluded.current_version, updated_at = excluded.updated_at",
             (plan.scope, plan.name, plan.version, float(plan.created_at)))
    stored = yield from get_plan_version(plan.scope, plan.name, plan.version)
    assert stored is not None
    return stored


def list_plans(scope: str | None) -> Body[list[base.PlanRow]]:
    where = "WHERE v.scope = ?" if scope is not None else ""
    rows = yield Q(f"{_PLAN_SELECT} JOIN plans p ON p.scope = v.scope AND p.name = v.name"
                   f" AND p.current_version = v.version {where} ORDER BY v.scope, v.name",
                   (scope,) if scope is not None else ())
    return [_plan_row(r) for r in rows]


def list_plan_versions(d: Dialect, scope: str, name: str) -> Body[list[base.PlanRow]]:
    rows = yield Q(f"{_PLAN_SELECT} LEFT JOIN plans p ON p.scope = v.scope AND p.name = v.name"
                   f" WHERE v.scope = ? AND v.name = ? ORDER BY v.created_at,"
                   f" {d.submitted_order}", (scope, name))
    return [_plan_row(r) for r in rows]


def one(query: Q) -> Body[list[tuple[Any, ...]]]:
    """A body of one statement, answered with its rows."""
    rows: list[tuple[Any, ...]] = yield query
    return rows


# -- the change feed (rows written by the triggers of migration 6) ---------------------

CHANGE_COLUMNS = "seq, instance_id, scope, workflow, kind, status, step, at"


def read_changes(after: int, limit: int) -> Body[list[base.ChangeRow]]:
    rows = yield Q(f"SELECT {CHANGE_COLUMNS} FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                   (after, limit))
    return [base.ChangeRow(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], float(r[7]))
            for r in rows]


def trim_changes(before: float) -> Body[int]:
    rows = yield Q("DELETE FROM changes WHERE at < ? AND seq < (SELECT max(seq) FROM changes)"
                   " RETURNING 1", (float(before),))
    return len(rows)


def last_change() -> Body[int]:
    rows = yield Q("SELECT max(seq) FROM changes")
    return int(rows[0][0] or 0) if rows else 0
