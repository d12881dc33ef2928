"""The embedded default store: one SQLite file in WAL mode, through aiosqlite.

Why it is shaped this way (each choice was measured; see ``bench/README.md``):

- **A write transaction is one thread hop.** aiosqlite runs every call on the
  connection's own thread; each hop costs ~70-100 us of handoff, more than SQLite's own
  work for a small statement. So every write transaction here is one plain function,
  ``BEGIN IMMEDIATE`` to ``COMMIT``, handed to the writer connection's thread in a
  single hop. Because that thread runs one function at a time, transactions never
  interleave and need no lock on the event loop. (Four hops per step cost 577 us, one
  hop 270 us, against a 180 us floor for plain sqlite3.)
- **Group commit.** Runners' step results, timers and status changes go to one queue;
  a writer task drains it into a single durable transaction (``synchronous=FULL``), so
  200 instances share one fsync. A runner's `commit` returns once its batch is on disk:
  no instance starts step n+1 before step n is durable.
- **A separate reader connection.** WAL lets journal loads and statuses proceed on
  their own thread while the writer holds the write lock.
- **Contention is retried, never surfaced.** Several processes may share the file.
  ``busy_timeout`` waits inside SQLite; what still comes back as ``SQLITE_BUSY`` /
  "database is locked" is retried with tenacity, in the writer's thread, and only then:
  the fast path pays nothing for it.
- **Due-time index.** The scheduler reads only due rows through a partial index on
  ``due_at``, so a million sleeping instances cost disk, not memory or CPU.
- ``memory://`` is the same store on a private in-memory database (one connection).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from agentflow.errors import InvalidArgumentError
from agentflow.store._base import (
    ChangeRow,
    CommitResult,
    EventRow,
    InstanceChange,
    InstanceRow,
    JournalRow,
    NewInstance,
    PlanRow,
    RunCommit,
    Store,
)
from agentflow.store._group import GroupCommitter
from agentflow.store._migrations import MIGRATIONS, SCHEMA_VERSION

__all__ = ["SQLiteStore"]

T = TypeVar("T")
Db = sqlite3.Connection

_CHANGE_COLUMNS = "seq, instance_id, scope, workflow, kind, status, step, at"
_INSTANCE_COLUMNS = ("id, workflow, status, payload, created_at, updated_at, output, error, "
                     "waiting_on, due_at, lease_owner, lease_until, fence, scope")
_STEP_COLUMNS = ("seq, name, n, kind, status, attempts, started_at, result, error, "
                 "finished_at, wake_at")
_MAX_VARS = 500  # bound on "?" per statement, well under SQLite's limit
_BUSY_RETRY_SECONDS = 60.0


def _is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _retry_busy(fn: Callable[[], T]) -> T:
    """Run ``fn``; only if SQLite says busy, retry it with tenacity's backoff."""
    try:
        return fn()
    except sqlite3.OperationalError as exc:
        if not _is_busy(exc):
            raise
    for attempt in Retrying(retry=retry_if_exception(_is_busy), reraise=True,
                            wait=wait_random_exponential(multiplier=0.005, max=0.25),
                            stop=stop_after_delay(_BUSY_RETRY_SECONDS)):
        with attempt:
            return fn()
    raise AssertionError("unreachable")  # pragma: no cover


def _chunks(items: Sequence[Any], size: int = _MAX_VARS) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _check_folder(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"cannot open the SQLite database {path!r}: the folder "
                                   f"{folder!r} does not exist; create it first")


def _check_schema(db: Db, path: str) -> int:
    """The file's schema version; refuses a newer agentflow's file and a foreign one."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise InvalidArgumentError(
            f"the SQLite database {path!r} has schema version {version}, written by a newer "
            f"agentflow (this one knows up to {SCHEMA_VERSION}); upgrade agentflow to open it")
    if version == 0:
        tables = [name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name LIMIT 5")]
        if tables:
            raise InvalidArgumentError(
                f"the SQLite database {path!r} is not an agentflow database (it holds "
                f"tables {tables} and no agentflow schema); point agentflow at another file")
    return int(version)


def _migrate(db: Db, path: str) -> None:
    """Bring the schema to `SCHEMA_VERSION`, inside the caller's write transaction."""
    version = _check_schema(db, path)  # again: another process may have migrated it
    for number, statements in MIGRATIONS:
        if number > version:
            for statement in statements:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


def _instance(row: Sequence[Any]) -> InstanceRow:
    return InstanceRow(*row)


def _get_instance(db: Db, instance_id: str) -> InstanceRow | None:
    row = db.execute(f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE id = ?",
                     (instance_id,)).fetchone()
    return _instance(row) if row else None


class SQLiteStore(Store):
    """SQLite in WAL mode. ``path`` is a file path, or ``":memory:"`` for a private
    in-memory database.

    Args:
        path: the database file; created with its schema if missing.
        busy_timeout: seconds a statement waits for another process's write lock
            before tenacity takes over the retrying.
    """

    def __init__(self, path: str, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.url = "memory://" if path == ":memory:" else f"sqlite:///{path}"
        self._busy_timeout = busy_timeout
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._committer = GroupCommitter(self._write_commits)

    # -- lifecycle -----------------------------------------------------------------
    async def open(self) -> None:
        try:
            self._writer = await self._connect()
            # A read first: a database already at this version needs no write lock to
            # open (another process may hold it), and a foreign file is refused untouched.
            version = await self._hop(self._writer, lambda db: _check_schema(db, self.path))
            if version < SCHEMA_VERSION:
                await self._write(lambda db: _migrate(db, self.path))
            self._reader = self._writer if self.path == ":memory:" else await self._connect()
        except BaseException:
            # aiosqlite's threads would keep the process alive: close what was opened
            for conn in {id(c): c for c in (self._reader, self._writer) if c}.values():
                with contextlib.suppress(Exception):
                    await conn.close()
            self._reader = self._writer = None
            raise
        self._committer.start()

    async def _connect(self) -> aiosqlite.Connection:
        if self.path != ":memory:":
            _check_folder(self.path)  # else SQLite says only "unable to open database file"
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            if self.path != ":memory:":
                await self._hop(conn, lambda db: _retry_busy(
                    lambda: db.execute("PRAGMA journal_mode = WAL").fetchone()))
            await conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        await self._committer.stop()  # commits that arrived while closing still land
        for conn in {id(c): c for c in (self._reader, self._writer) if c is not None}.values():
            await conn.close()
        self._reader = self._writer = None

    @staticmethod
    async def _hop(conn: aiosqlite.Connection, fn: Callable[[Db], T]) -> T:
        """Run ``fn(sqlite3_connection)`` on the connection's thread: one hop.

        aiosqlite's ``_execute`` is how its own methods reach the thread; using it for a
        whole function is what makes a transaction cost one handoff instead of one per
        statement.
        """
        raw: Db = conn._conn
        result: T = await conn._execute(fn, raw)  # type: ignore[no-untyped-call]
        return result

    async def _write(self, body: Callable[[Db], T]) -> T:
        """One write transaction, run whole in the writer's thread, retried on BUSY."""
        if self._writer is None:
            raise RuntimeError("the store is not open")

        def transaction(db: Db) -> T:
            def once() -> T:
                db.execute("BEGIN IMMEDIATE")
                try:
                    value = body(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return value
            return _retry_busy(once)

        return await self._hop(self._writer, transaction)

    async def _read(self, body: Callable[[Db], T]) -> T:
        if self._reader is None:
            raise RuntimeError("the store is not open")
        return await self._hop(self._reader, lambda db: _retry_busy(lambda: body(db)))

    async def schema_version(self) -> int:
        return int(await self._read(lambda db: db.execute("PRAGMA user_version").fetchone()[0]))

    # -- instances -----------------------------------------------------------------
    async def create_instances(self, rows: Sequence[NewInstance]) -> list[str]:
        def body(db: Db) -> list[str]:
            existing: set[str] = set()
            for chunk in _chunks([r.id for r in rows]):
                found = db.execute(f"SELECT id FROM instances WHERE id IN ({_marks(chunk)})",
                                   chunk).fetchall()
                existing.update(r[0] for r in found)
            fresh: dict[str, NewInstance] = {}
            for r in rows:
                if r.id not in existing and r.id not in fresh:
                    fresh[r.id] = r
            db.executemany(
                "INSERT INTO instances (id, workflow, status, payload, created_at, updated_at,"
                " due_at, fence, scope) VALUES (?, ?, 'queued', ?, ?, ?, ?, 0, ?)",
                [(r.id, r.workflow, r.payload, r.created_at, r.created_at, r.created_at,
                  r.scope) for r in fresh.values()])
            return list(fresh)
        return await self._write(body)

    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        return await self._read(lambda db: _get_instance(db, instance_id))

    async def list_instances(self, *, workflows: Sequence[str] | None = None,
                             statuses: Sequence[str] | None = None,
                             scopes: Sequence[str] | None = None, limit: int = 100,
                             offset: int = 0, before: tuple[float, str] | None = None,
                             plans: Sequence[str] | None = None) -> list[InstanceRow]:
        where: list[str] = []
        params: list[Any] = []
        for column, values in (("workflow", workflows), ("status", statuses),
                               ("scope", scopes)):
            if values is not None:
                where.append(f"{column} IN ({_marks(values)})" if values else "0")
                params.extend(values)
        if plans is not None:  # agent plans carry their name in the payload's envelope
            where.append("json_extract(payload, '$.__dispatcher_metadata.plan') IN "
                         f"({_marks(plans)})" if plans else "0")
            params.extend(plans)
        if before is not None:
            where.append("(created_at < ? OR (created_at = ? AND id > ?))")
            params.extend([before[0], before[0], before[1]])
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = (f"SELECT {_INSTANCE_COLUMNS} FROM instances {clause} "
               "ORDER BY created_at DESC, id LIMIT ? OFFSET ?")
        rows = await self._read(lambda db: db.execute(sql, [*params, limit, offset]).fetchall())
        return [_instance(r) for r in rows]

    async def transition(self, instance_id: str,
                         decide: Callable[[InstanceRow], InstanceChange | None]
                         ) -> InstanceRow | None:
        def body(db: Db) -> InstanceRow | None:
            row = _get_instance(db, instance_id)
            if row is None:
                return None
            change = decide(row)
            if change is None:
                return row
            self._apply_change(db, row, change)
            return _get_instance(db, instance_id)
        return await self._write(body)

    @staticmethod
    def _apply_change(db: Db, row: InstanceRow, change: InstanceChange) -> None:
        sets: list[str] = ["updated_at = ?"]
        params: list[Any] = [max(row.updated_at, change.at)]
        for column in ("status", "payload"):
            value = getattr(change, column)
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        for column in ("due_at", "output", "error", "waiting_on"):
            value = getattr(change, column)
            if value is not ...:
                sets.append(f"{column} = ?")
                params.append(value)
        if change.bump_fence:
            sets.append("fence = fence + 1")
        if change.clear_lease:
            sets.append("lease_owner = NULL, lease_until = NULL")
        db.execute(f"UPDATE instances SET {', '.join(sets)} WHERE id = ?", [*params, row.id])
        if change.delete_steps_from is not None:
            db.execute("DELETE FROM events WHERE instance_id = ? AND (consumed_seq >= ?"
                       " OR consumed_seq IS NULL)", (row.id, change.delete_steps_from))
            db.execute("DELETE FROM steps WHERE instance_id = ? AND seq >= ?",
                       (row.id, change.delete_steps_from))

    # -- scheduling ----------------------------------------------------------------
    async def claim_due_instances(self, *, owner: str, workflows: Sequence[str], now: float,
                                  lease_now: float, lease_until: float, limit: int
                                  ) -> list[InstanceRow]:
        if not workflows or limit <= 0:
            return []

        def body(db: Db) -> list[InstanceRow]:
            due = db.execute(
                # INDEXED BY: with many sleepers the planner would otherwise pick the
                # listing index on workflow and sort every row of it (seen: +75 ms).
                f"SELECT id, status FROM instances INDEXED BY instances_due WHERE due_at <= ?"
                f" AND workflow IN ({_marks(workflows)})"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY due_at LIMIT ?",
                [now, *workflows, lease_now, limit]).fetchall()
            pausing = [r[0] for r in due if r[1] == "waiting_for_pause"]
            claim = [r[0] for r in due if r[1] != "waiting_for_pause"]
            if pausing:  # its holder died before it could pause: pause it now
                db.execute(
                    "UPDATE instances SET status = 'paused', due_at = NULL, updated_at = ?,"
                    " lease_owner = NULL, lease_until = NULL, fence = fence + 1"
                    f" WHERE id IN ({_marks(pausing)})", [now, *pausing])
            if not claim:
                return []
            rows = db.execute(
                "UPDATE instances SET status = 'running', lease_owner = ?, lease_until = ?,"
                f" fence = fence + 1, updated_at = ? WHERE id IN ({_marks(claim)})"
                f" RETURNING {_INSTANCE_COLUMNS}", [owner, lease_until, now, *claim]).fetchall()
            return [_instance(r) for r in rows]
        return await self._write(body)

    async def next_due_at(self, workflows: Sequence[str], *, lease_now: float) -> float | None:
        if not workflows:
            return None
        sql = (f"SELECT due_at FROM instances INDEXED BY instances_due WHERE due_at IS NOT NULL"
               f" AND workflow IN ({_marks(workflows)})"
               " AND (lease_until IS NULL OR lease_until < ?) ORDER BY due_at LIMIT 1")
        row = await self._read(lambda db: db.execute(sql, [*workflows, lease_now]).fetchone())
        return None if row is None else float(row[0])

    async def renew_leases(self, *, owner: str, instance_ids: Sequence[str],
                           lease_until: float) -> None:
        def body(db: Db) -> None:
            for chunk in _chunks(list(instance_ids)):
                db.execute(f"UPDATE instances SET lease_until = ? WHERE lease_owner = ?"
                           f" AND id IN ({_marks(chunk)})", [lease_until, owner, *chunk])
        if instance_ids:
            await self._write(body)

    async def release_leases(self, *, owner: str, instance_ids: Sequence[str],
                             now: float) -> None:
        def body(db: Db) -> None:
            for chunk in _chunks(list(instance_ids)):
                db.execute(
                    "UPDATE instances SET lease_owner = NULL, lease_until = NULL,"
                    " fence = fence + 1, due_at = CASE WHEN status IN ('running',"
                    " 'waiting_for_pause') THEN ? ELSE due_at END,"
                    " status = CASE WHEN status = 'running' THEN 'queued' ELSE status END"
                    f" WHERE lease_owner = ? AND id IN ({_marks(chunk)})", [now, owner, *chunk])
        if instance_ids:
            await self._write(body)

    # -- journal and events --------------------------------------------------------
    async def load_journal(self, instance_id: str) -> list[JournalRow]:
        sql = f"SELECT {_STEP_COLUMNS} FROM steps WHERE instance_id = ? ORDER BY seq"
        rows = await self._read(lambda db: db.execute(sql, (instance_id,)).fetchall())
        return [JournalRow(*r) for r in rows]

    async def commit(self, commit: RunCommit) -> CommitResult:
        return await self._committer.submit(commit)

    async def _write_commits(self, commits: list[RunCommit]) -> list[CommitResult]:
        return await self._write(lambda db: _write_batch(db, commits))

    async def add_event(self, instance_id: str, type: str, payload: str, now: float,
                        decide: Callable[[InstanceRow], InstanceChange | None]) -> bool:
        def body(db: Db) -> bool:
            row = _get_instance(db, instance_id)
            if row is None:
                return False
            change = decide(row)
            db.execute("INSERT INTO events (instance_id, type, payload, created_at)"
                       " VALUES (?, ?, ?, ?)", (instance_id, type, payload, now))
            if change is not None:
                self._apply_change(db, row, change)
            return True
        return await self._write(body)

    async def pending_events(self, instance_id: str, type: str, *, exclude: Sequence[int] = (),
                             limit: int = 1) -> list[EventRow]:
        skip = f" AND id NOT IN ({_marks(exclude)})" if exclude else ""
        sql = ("SELECT id, instance_id, type, payload, created_at FROM events"
               f" WHERE instance_id = ? AND type = ? AND consumed_seq IS NULL{skip}"
               " ORDER BY id LIMIT ?")
        rows = await self._read(
            lambda db: db.execute(sql, [instance_id, type, *exclude, limit]).fetchall())
        return [EventRow(*r) for r in rows]


    # -- plan versions and key-value -----------------------------------------------
    async def put_plan_version(self, plan: PlanRow) -> PlanRow:
        def body(db: Db) -> PlanRow:
            db.execute("INSERT OR IGNORE INTO plan_versions (scope, name, version, source,"
                       " created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)",
                       (plan.scope, plan.name, plan.version, plan.source, plan.created_at,
                        plan.created_by))
            db.execute("INSERT INTO plans (scope, name, current_version, updated_at)"
                       " VALUES (?, ?, ?, ?) ON CONFLICT (scope, name) DO UPDATE SET"
                       " current_version = excluded.current_version,"
                       " updated_at = excluded.updated_at",
                       (plan.scope, plan.name, plan.version, plan.created_at))
            stored = _plan(db, plan.scope, plan.name, plan.version)
            assert stored is not None
            return stored
        return await self._write(body)

    async def get_plan_version(self, scope: str, name: str, version: str | None = None
                               ) -> PlanRow | None:
        return await self._read(lambda db: _plan(db, scope, name, version))

    async def list_plans(self, scope: str | None) -> list[PlanRow]:
        where = "WHERE v.scope = ?" if scope is not None else ""
        sql = (f"{_PLAN_SELECT} JOIN plans p ON p.scope = v.scope AND p.name = v.name"
               f" AND p.current_version = v.version {where} ORDER BY v.scope, v.name")
        params = (scope,) if scope is not None else ()
        rows = await self._read(lambda db: db.execute(sql, params).fetchall())
        return [_plan_row(r) for r in rows]

    async def list_plan_versions(self, scope: str, name: str) -> list[PlanRow]:
        sql = (f"{_PLAN_SELECT} LEFT JOIN plans p ON p.scope = v.scope AND p.name = v.name"
               " WHERE v.scope = ? AND v.name = ? ORDER BY v.created_at, v.rowid")
        rows = await self._read(lambda db: db.execute(sql, (scope, name)).fetchall())
        return [_plan_row(r) for r in rows]

    # -- the change feed (rows written by the triggers of migration 3) ----------------
    async def read_changes(self, after: int, limit: int = 500) -> list[ChangeRow]:
        rows = await self._read(lambda db: db.execute(
            f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit)).fetchall())
        return [ChangeRow(*r) for r in rows]

    async def last_change(self) -> int:
        row = await self._read(lambda db: db.execute("SELECT max(seq) FROM changes").fetchone())
        return int(row[0] or 0)

    async def kv_get(self, scope: str, key: str) -> str | None:
        row = await self._read(lambda db: db.execute(
            "SELECT value FROM kv WHERE scope = ? AND key = ?", (scope, key)).fetchone())
        return None if row is None else str(row[0])

    async def kv_set(self, scope: str, key: str, value: str, now: float) -> None:
        await self._write(lambda db: db.execute(
            "INSERT INTO kv (scope, key, value, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value,"
            " updated_at = excluded.updated_at", (scope, key, value, now)))

    async def kv_delete(self, scope: str, key: str) -> bool:
        count = await self._write(lambda db: db.execute(
            "DELETE FROM kv WHERE scope = ? AND key = ?", (scope, key)).rowcount)
        return bool(count)

    async def kv_list(self, scope: str, prefix: str = "", limit: int = 1000) -> list[str]:
        # Not LIKE: SQLite's LIKE ignores ASCII case, and keys are case-sensitive.
        rows = await self._read(lambda db: db.execute(
            "SELECT key FROM kv WHERE scope = ? AND substr(key, 1, ?) = ? ORDER BY key"
            " LIMIT ?", (scope, len(prefix), prefix, limit)).fetchall())
        return [str(r[0]) for r in rows]


_PLAN_SELECT = ("SELECT v.scope, v.name, v.version, v.source, v.created_at, v.created_by,"
                " coalesce(p.current_version = v.version, 0) FROM plan_versions v")


def _plan_row(r: Sequence[Any]) -> PlanRow:
    return PlanRow(r[0], r[1], r[2], r[3], r[4], r[5], current=bool(r[6]))


def _plan(db: Db, scope: str, name: str, version: str | None) -> PlanRow | None:
    if version is None:
        row = db.execute(f"{_PLAN_SELECT} JOIN plans p ON p.scope = v.scope AND p.name = v.name"
                         " AND p.current_version = v.version WHERE v.scope = ? AND v.name = ?",
                         (scope, name)).fetchone()
    else:
        row = db.execute(f"{_PLAN_SELECT} LEFT JOIN plans p ON p.scope = v.scope"
                         " AND p.name = v.name WHERE v.scope = ? AND v.name = ?"
                         " AND v.version = ?", (scope, name, version)).fetchone()
    return None if row is None else _plan_row(row)


def _write_batch(db: Db, commits: list[RunCommit]) -> list[CommitResult]:
    """Apply many runners' commits in the current transaction, each under its fence."""
    current: dict[str, tuple[int, str]] = {}
    ids = list({c.instance_id for c in commits})
    for chunk in _chunks(ids):
        rows = db.execute(f"SELECT id, fence, status FROM instances WHERE id IN"
                          f" ({_marks(chunk)})", chunk).fetchall()
        current.update({r[0]: (r[1], r[2]) for r in rows})
    accepted = [c for c in commits if current.get(c.instance_id, (None,))[0] == c.fence]
    steps = [(c.instance_id, s.seq, s.name, s.n, s.kind, s.status, s.attempts, s.started_at,
              s.result, s.error, s.finished_at, s.wake_at)
             for c in accepted for s in c.steps]
    if steps:
        db.executemany(f"INSERT OR REPLACE INTO steps (instance_id, {_STEP_COLUMNS})"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", steps)
    consumed = [(seq, event_id) for c in accepted for event_id, seq in c.consumed_events]
    if consumed:
        db.executemany("UPDATE events SET consumed_seq = ? WHERE id = ?", consumed)
    finishing = [c for c in accepted if c.finish is not None]
    buffered: set[tuple[str, str]] = set()
    waiters = [c.instance_id for c in finishing if c.finish and c.finish.wake_types]
    for chunk in _chunks(waiters):
        rows = db.execute("SELECT DISTINCT instance_id, type FROM events WHERE consumed_seq"
                          f" IS NULL AND instance_id IN ({_marks(chunk)})", chunk).fetchall()
        buffered.update((r[0], r[1]) for r in rows)
    updates = []
    for c in finishing:
        f = c.finish
        assert f is not None
        status, due_at = f.status, f.due_at
        if any((c.instance_id, t) in buffered for t in f.wake_types):
            status, due_at = "queued", f.at  # an awaited event is already here: run again
        if current[c.instance_id][1] == "waiting_for_pause" and status in ("waiting", "queued"):
            status, due_at = "paused", None
        updates.append((status, f.output, f.error, f.waiting_on, due_at, f.at,
                        c.instance_id, c.fence))
        current[c.instance_id] = (c.fence, status)
    if updates:
        db.executemany(
            "UPDATE instances SET status = ?, output = ?, error = ?, waiting_on = ?,"
            " due_at = ?, updated_at = max(?, updated_at), lease_owner = NULL,"
            " lease_until = NULL WHERE id = ? AND fence = ?", updates)
    return [CommitResult(ok=current.get(c.instance_id, (None,))[0] == c.fence,
                         status=current.get(c.instance_id, (None, None))[1])
            for c in commits]
