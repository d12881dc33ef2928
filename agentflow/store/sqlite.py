"""The embedded default store: one SQLite file in WAL mode, through aiosqlite.

Why it is shaped this way:

- **One writer connection, group commit.** Every runner's step results, timers and
  status changes go to one queue; a writer task drains the queue into a single
  ``BEGIN IMMEDIATE ... COMMIT`` with ``synchronous=FULL``. A batch costs the same
  handful of thread hops (one fenced ``SELECT``, one ``executemany`` per table) whatever
  its size, so 200 instances share one fsync instead of paying 200. A runner's
  `commit` returns only once its batch is on disk, so no instance starts step n+1
  before step n is durable.
- **A separate reader connection.** WAL lets reads (journal loads, statuses) proceed
  while the writer holds the write lock.
- **Contention is retried, never surfaced.** Several processes may share the file (a
  worker, an MCP server, a notebook). ``busy_timeout`` waits for the lock inside SQLite;
  tenacity retries what still comes back ``SQLITE_BUSY``/"database is locked".
- **Due-time index.** The scheduler's queries read only due rows through a partial
  index on ``due_at``, so a million sleeping instances cost disk, not memory or CPU.
- ``memory://`` is the same store on a private in-memory database (one connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiosqlite
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_random_exponential

from agentflow.store._base import (
    CommitResult,
    EventRow,
    InstanceChange,
    InstanceRow,
    JournalRow,
    NewInstance,
    RunCommit,
    Store,
)
from agentflow.store._migrations import MIGRATIONS

__all__ = ["SQLiteStore"]

_INSTANCE_COLUMNS = ("id, workflow, status, payload, created_at, updated_at, output, error, "
                     "waiting_on, due_at, lease_owner, lease_until, fence")
_STEP_COLUMNS = ("seq, name, n, kind, status, attempts, started_at, result, error, "
                 "finished_at, wake_at")
_MAX_VARS = 500  # bound on "?" per statement, well under SQLite's limit


def _is_busy(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _chunks(items: Sequence[Any], size: int = _MAX_VARS) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _instance(row: Sequence[Any]) -> InstanceRow:
    return InstanceRow(*row)


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
        self._write_lock = asyncio.Lock()
        self._queue: list[tuple[RunCommit, asyncio.Future[CommitResult]]] = []
        self._queue_ready = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------
    async def open(self) -> None:
        try:
            self._writer = await self._connect()
            await self._migrate()
            self._reader = self._writer if self.path == ":memory:" else await self._connect()
        except BaseException:
            # aiosqlite's threads would keep the process alive: close what was opened
            for conn in {id(c): c for c in (self._reader, self._writer) if c}.values():
                with contextlib.suppress(Exception):
                    await conn.close()
            self._reader = self._writer = None
            raise
        self._writer_task = asyncio.create_task(self._drain_commits(), name="agentflow-commit")

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            if self.path != ":memory:":
                async for attempt in self._retrying():
                    with attempt:
                        await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        if self._writer_task is not None:
            self._writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer_task
            self._writer_task = None
        if self._queue:  # commits that arrived while closing still land
            batch, self._queue = self._queue, []
            await self._apply_batch(batch)
        for conn in {id(c): c for c in (self._reader, self._writer) if c is not None}.values():
            await conn.close()
        self._reader = self._writer = None

    @property
    def _w(self) -> aiosqlite.Connection:
        if self._writer is None:
            raise RuntimeError("the store is not open")
        return self._writer

    @property
    def _r(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("the store is not open")
        return self._reader

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(retry=retry_if_exception(_is_busy), reraise=True,
                             wait=wait_random_exponential(multiplier=0.005, max=0.25),
                             stop=stop_after_delay(60))

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction; the caller's body must be safe to run again on BUSY."""
        async with self._write_lock:
            conn = self._w
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def _in_write_txn(self, body: Callable[[aiosqlite.Connection], Any]) -> Any:
        async for attempt in self._retrying():
            with attempt:
                async with self._write() as conn:
                    return await body(conn)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async for attempt in self._retrying():
            with attempt:
                return list(await self._r.execute_fetchall(sql, params))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _migrate(self) -> None:
        async def body(conn: aiosqlite.Connection) -> None:
            (version,), = list(await conn.execute_fetchall("PRAGMA user_version"))
            for number, statements in MIGRATIONS:
                if number > version:
                    for statement in statements:
                        await conn.execute(statement)
                    await conn.execute(f"PRAGMA user_version = {number}")
        await self._in_write_txn(body)

    async def schema_version(self) -> int:
        (version,), = await self._read("PRAGMA user_version")
        return int(version)

    # -- instances -----------------------------------------------------------------
    async def create_instances(self, rows: Sequence[NewInstance]) -> list[str]:
        async def body(conn: aiosqlite.Connection) -> list[str]:
            existing: set[str] = set()
            for chunk in _chunks([r.id for r in rows]):
                marks = ",".join("?" * len(chunk))
                found = await conn.execute_fetchall(
                    f"SELECT id FROM instances WHERE id IN ({marks})", chunk)
                existing.update(r[0] for r in found)
            fresh: dict[str, NewInstance] = {}
            for r in rows:
                if r.id not in existing and r.id not in fresh:
                    fresh[r.id] = r
            await conn.executemany(
                "INSERT INTO instances (id, workflow, status, payload, created_at, updated_at,"
                " due_at, fence) VALUES (?, ?, 'queued', ?, ?, ?, ?, 0)",
                [(r.id, r.workflow, r.payload, r.created_at, r.created_at, r.created_at)
                 for r in fresh.values()])
            return list(fresh)
        result: list[str] = await self._in_write_txn(body)
        return result

    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        rows = await self._read(f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE id = ?",
                                (instance_id,))
        return _instance(rows[0]) if rows else None

    async def list_instances(self, *, workflows: Sequence[str] | None = None,
                             statuses: Sequence[str] | None = None, limit: int = 100,
                             offset: int = 0) -> list[InstanceRow]:
        where: list[str] = []
        params: list[Any] = []
        for column, values in (("workflow", workflows), ("status", statuses)):
            if values is not None:
                where.append(f"{column} IN ({','.join('?' * len(values))})" if values else "0")
                params.extend(values)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._read(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances {clause} "
            "ORDER BY created_at DESC, id LIMIT ? OFFSET ?", [*params, limit, offset])
        return [_instance(r) for r in rows]

    async def transition(self, instance_id: str,
                         decide: Callable[[InstanceRow], InstanceChange | None]
                         ) -> InstanceRow | None:
        async def body(conn: aiosqlite.Connection) -> InstanceRow | None:
            rows = list(await conn.execute_fetchall(
                f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE id = ?", (instance_id,)))
            if not rows:
                return None
            row = _instance(rows[0])
            change = decide(row)
            if change is not None:
                await self._apply_change(conn, row, change)
                rows = list(await conn.execute_fetchall(
                    f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE id = ?", (instance_id,)))
                row = _instance(rows[0])
            return row
        result: InstanceRow | None = await self._in_write_txn(body)
        return result

    @staticmethod
    async def _apply_change(conn: aiosqlite.Connection, row: InstanceRow,
                            change: InstanceChange) -> None:
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
        await conn.execute(f"UPDATE instances SET {', '.join(sets)} WHERE id = ?",
                           [*params, row.id])
        if change.delete_steps_from is not None:
            await conn.execute(
                "DELETE FROM events WHERE instance_id = ? AND consumed_seq >= ?",
                (row.id, change.delete_steps_from))
            await conn.execute("DELETE FROM steps WHERE instance_id = ? AND seq >= ?",
                               (row.id, change.delete_steps_from))

    # -- scheduling ----------------------------------------------------------------
    async def claim_due_instances(self, *, owner: str, workflows: Sequence[str], now: float,
                                  lease_now: float, lease_until: float, limit: int
                                  ) -> list[InstanceRow]:
        if not workflows or limit <= 0:
            return []
        marks = ",".join("?" * len(workflows))

        async def body(conn: aiosqlite.Connection) -> list[InstanceRow]:
            due = await conn.execute_fetchall(
                f"SELECT id, status FROM instances WHERE due_at <= ? AND workflow IN ({marks})"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY due_at LIMIT ?",
                [now, *workflows, lease_now, limit])
            pausing = [r[0] for r in due if r[1] == "waiting_for_pause"]
            claim = [r[0] for r in due if r[1] != "waiting_for_pause"]
            if pausing:  # its holder died before it could pause: pause it now
                await conn.execute(
                    f"UPDATE instances SET status = 'paused', due_at = NULL, updated_at = ?,"
                    f" lease_owner = NULL, lease_until = NULL, fence = fence + 1"
                    f" WHERE id IN ({','.join('?' * len(pausing))})", [now, *pausing])
            if not claim:
                return []
            rows = await conn.execute_fetchall(
                f"UPDATE instances SET status = 'running', lease_owner = ?, lease_until = ?,"
                f" fence = fence + 1, updated_at = ? WHERE id IN ({','.join('?' * len(claim))})"
                f" RETURNING {_INSTANCE_COLUMNS}", [owner, lease_until, now, *claim])
            return [_instance(r) for r in rows]
        result: list[InstanceRow] = await self._in_write_txn(body)
        return result

    async def next_due_at(self, workflows: Sequence[str], *, lease_now: float) -> float | None:
        if not workflows:
            return None
        marks = ",".join("?" * len(workflows))
        rows = await self._read(
            f"SELECT due_at FROM instances WHERE due_at IS NOT NULL"
            f" AND workflow IN ({marks}) AND (lease_until IS NULL OR lease_until < ?)"
            " ORDER BY due_at LIMIT 1",
            [*workflows, lease_now])
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    async def renew_leases(self, *, owner: str, instance_ids: Sequence[str],
                           lease_until: float) -> None:
        async def body(conn: aiosqlite.Connection) -> None:
            for chunk in _chunks(list(instance_ids)):
                await conn.execute(
                    f"UPDATE instances SET lease_until = ? WHERE lease_owner = ?"
                    f" AND id IN ({','.join('?' * len(chunk))})", [lease_until, owner, *chunk])
        if instance_ids:
            await self._in_write_txn(body)

    async def release_leases(self, *, owner: str, instance_ids: Sequence[str],
                             now: float) -> None:
        async def body(conn: aiosqlite.Connection) -> None:
            for chunk in _chunks(list(instance_ids)):
                await conn.execute(
                    "UPDATE instances SET lease_owner = NULL, lease_until = NULL,"
                    " fence = fence + 1, due_at = CASE WHEN status IN ('running',"
                    " 'waiting_for_pause') THEN ? ELSE due_at END,"
                    " status = CASE WHEN status = 'running' THEN 'queued' ELSE status END"
                    f" WHERE lease_owner = ? AND id IN ({','.join('?' * len(chunk))})",
                    [now, owner, *chunk])
        if instance_ids:
            await self._in_write_txn(body)

    # -- journal and events --------------------------------------------------------
    async def load_journal(self, instance_id: str) -> list[JournalRow]:
        rows = await self._read(f"SELECT {_STEP_COLUMNS} FROM steps WHERE instance_id = ?"
                                " ORDER BY seq", (instance_id,))
        return [JournalRow(*r) for r in rows]

    async def commit(self, commit: RunCommit) -> CommitResult:
        fut: asyncio.Future[CommitResult] = asyncio.get_running_loop().create_future()
        self._queue.append((commit, fut))
        self._queue_ready.set()
        return await fut

    async def _drain_commits(self) -> None:
        while True:
            await self._queue_ready.wait()
            self._queue_ready.clear()
            batch, self._queue = self._queue, []
            if batch:
                await self._apply_batch(batch)

    async def _apply_batch(self, batch: list[tuple[RunCommit, asyncio.Future[CommitResult]]]
                           ) -> None:
        try:
            results: dict[int, CommitResult] = await self._in_write_txn(
                lambda conn: self._write_batch(conn, [c for c, _ in batch]))
        except Exception as exc:  # the store is gone or broken: every waiter learns why
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for i, (_, fut) in enumerate(batch):
            if not fut.done():
                fut.set_result(results[i])

    async def _write_batch(self, conn: aiosqlite.Connection,
                           commits: list[RunCommit]) -> dict[int, CommitResult]:
        current: dict[str, tuple[int, str]] = {}
        ids = list({c.instance_id for c in commits})
        for chunk in _chunks(ids):
            rows = await conn.execute_fetchall(
                f"SELECT id, fence, status FROM instances WHERE id IN"
                f" ({','.join('?' * len(chunk))})", chunk)
            current.update({r[0]: (r[1], r[2]) for r in rows})
        results: dict[int, CommitResult] = {}
        accepted: list[RunCommit] = []
        for i, c in enumerate(commits):
            fence, status = current.get(c.instance_id, (None, None))
            if fence != c.fence:
                results[i] = CommitResult(ok=False, status=status)
            else:
                accepted.append(c)
        steps = [(c.instance_id, s.seq, s.name, s.n, s.kind, s.status, s.attempts, s.started_at,
                  s.result, s.error, s.finished_at, s.wake_at)
                 for c in accepted for s in c.steps]
        if steps:
            await conn.executemany(
                f"INSERT OR REPLACE INTO steps (instance_id, {_STEP_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", steps)
        consumed = [(seq, event_id) for c in accepted for event_id, seq in c.consumed_events]
        if consumed:
            await conn.executemany("UPDATE events SET consumed_seq = ? WHERE id = ?", consumed)
        finishing = [c for c in accepted if c.finish is not None]
        buffered: set[tuple[str, str]] = set()
        waiters = [c.instance_id for c in finishing if c.finish and c.finish.wake_types]
        for chunk in _chunks(waiters):
            rows = await conn.execute_fetchall(
                "SELECT DISTINCT instance_id, type FROM events WHERE consumed_seq IS NULL"
                f" AND instance_id IN ({','.join('?' * len(chunk))})", chunk)
            buffered.update((r[0], r[1]) for r in rows)
        updates = []
        for c in finishing:
            f = c.finish
            assert f is not None
            status, due_at, waiting_on = f.status, f.due_at, f.waiting_on
            if any((c.instance_id, t) in buffered for t in f.wake_types):
                status, due_at = "queued", f.at  # an awaited event is already here: run again
            if current[c.instance_id][1] == "waiting_for_pause" and status in ("waiting",
                                                                                "queued"):
                status, due_at = "paused", None
            updates.append((status, f.output, f.error, waiting_on, due_at, f.at,
                            c.instance_id, c.fence))
            current[c.instance_id] = (c.fence, status)
        if updates:
            await conn.executemany(
                "UPDATE instances SET status = ?, output = ?, error = ?, waiting_on = ?,"
                " due_at = ?, updated_at = max(?, updated_at), lease_owner = NULL,"
                " lease_until = NULL WHERE id = ? AND fence = ?", updates)
        for i, c in enumerate(commits):
            if i not in results:
                results[i] = CommitResult(ok=True, status=current[c.instance_id][1])
        return results

    async def add_event(self, instance_id: str, type: str, payload: str, now: float,
                        decide: Callable[[InstanceRow], InstanceChange | None]) -> bool:
        async def body(conn: aiosqlite.Connection) -> bool:
            rows = list(await conn.execute_fetchall(
                f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE id = ?", (instance_id,)))
            if not rows:
                return False
            row = _instance(rows[0])
            change = decide(row)
            await conn.execute(
                "INSERT INTO events (instance_id, type, payload, created_at) VALUES (?, ?, ?, ?)",
                (instance_id, type, payload, now))
            if change is not None:
                await self._apply_change(conn, row, change)
            return True
        result: bool = await self._in_write_txn(body)
        return result

    async def pending_events(self, instance_id: str, type: str, *, exclude: Sequence[int] = (),
                             limit: int = 1) -> list[EventRow]:
        marks = ",".join("?" * len(exclude))
        skip = f" AND id NOT IN ({marks})" if exclude else ""
        rows = await self._read(
            "SELECT id, instance_id, type, payload, created_at FROM events"
            f" WHERE instance_id = ? AND type = ? AND consumed_seq IS NULL{skip}"
            " ORDER BY id LIMIT ?", [instance_id, type, *exclude, limit])
        return [EventRow(*r) for r in rows]

