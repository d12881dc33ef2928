"""The store for many workers on many machines: PostgreSQL, through psycopg 3.

Install with ``pip install "agentflow[postgres]"`` and name the database with a
``postgresql://`` (or ``postgres://``) URL. Importing ``agentflow`` never imports this
module or psycopg: `agentflow.store.open_store` imports it only for such a URL.

How it keeps the store contract (``agentflow.store._base``), and why it is shaped so:

- **Claims** are one statement, ``UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED)``:
  concurrent claimers on any number of machines skip each other's rows instead of
  waiting on them, and each due row goes to exactly one of them with a bumped fence.
- **Fencing.** A group commit first locks the rows of its instances (``FOR UPDATE``, in
  id order so that two batches cannot deadlock) and reads their fences; a commit whose
  fence moved on writes nothing. While the lock is held no claim can take the row (it
  skips it), so nothing can slip between the check and the writes.
- **Group commit**, as in the SQLite store: runners' commits queue up and one task
  writes each queue as one transaction (arrays through ``unnest``, so a batch is the
  same four statements whatever its size), in pipeline mode so that the batch costs
  two round trips and one WAL flush. A runner's `commit` returns once it is durable.
- **LISTEN/NOTIFY.** A write that makes work due for someone else (new instances, an
  event, a timer moved, claims handed back) sends ``pg_notify`` inside its
  transaction; a dedicated connection listens, and `wait_for_change` returns when a
  notification arrives, so idle workers wake at once and otherwise poll only for
  expired leases. Commits that merely add steps or finish a run notify nobody: under
  load the channel stays quiet. The channel is per schema, so databases shared by
  several schemas (the test suite) do not wake each other.
- **Transient errors are retried, never surfaced**: serialization failures, deadlocks
  and lost connections (the pool replaces a broken connection), with tenacity's
  backoff, and only after a first failure (the fast path pays nothing). A connection
  lost *during* ``COMMIT`` leaves the outcome unknown: an idempotent write (a commit
  batch, a claim, leases, kv) is simply written again; any other raises
  `CommitOutcomeUnknownError` rather than risk applying a change twice.
- **Migrations** (``_pg_migrations.py``) mirror the SQLite schema version for version.
  They run under a transaction-scoped advisory lock, so many workers starting at once
  migrate a database exactly once.
- The schema is the first one on the connection's ``search_path``; to use another,
  add ``?options=-csearch_path%3Dmyschema`` to the URL (a libpq option).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection, errors, sql
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_random_exponential

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
from agentflow.store._pg_migrations import MIGRATIONS, SCHEMA_VERSION

__all__ = ["CommitOutcomeUnknownError", "PostgresStore"]

log = logging.getLogger("agentflow.store.postgres")

T = TypeVar("T")
Conn = AsyncConnection[Any]

_CHANGE_COLUMNS = "seq, instance_id, scope, workflow, kind, status, step, at"
_INSTANCE_COLUMNS = ("id, workflow, status, payload, created_at, updated_at, output, error, "
                     "waiting_on, due_at, lease_owner, lease_until, fence, scope")
_STEP_COLUMNS = ("seq, name, n, kind, status, attempts, started_at, result, error, "
                 "finished_at, wake_at")
_RETRY_SECONDS = 60.0


class CommitOutcomeUnknownError(Exception):
    """The connection was lost while PostgreSQL was committing a write that is not safe
    to repeat: it may or may not have been applied. Read the state and decide."""


def _is_transient(exc: BaseException) -> bool:
    """Errors after which the whole transaction may simply be run again."""
    if isinstance(exc, errors.SerializationFailure | errors.DeadlockDetected):
        return True
    if isinstance(exc, PoolTimeout | PoolClosed):
        return False  # the pool already waited, or the store is closed
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate  # None: the client lost the connection
        return state is None or state.startswith("08") or state in ("57P01", "57P02",
                                                                     "57P03")
    return False


def _floats(values: Sequence[float | None]) -> list[float | None]:
    # psycopg picks an array's type from its values: an int among floats would make it
    # an integer array, so every time is sent as a float.
    return [None if v is None else float(v) for v in values]


def _instance(row: Sequence[Any]) -> InstanceRow:
    return InstanceRow(*row)


async def _get_instance(conn: Conn, instance_id: str, *, lock: bool = False
                        ) -> InstanceRow | None:
    cur = await conn.execute(f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE id = %s"
                             f"{' FOR UPDATE' if lock else ''}", (instance_id,))
    row = await cur.fetchone()
    return _instance(row) if row else None


class PostgresStore(Store):
    """PostgreSQL, for workers on several machines sharing one database.

    Args:
        url: a libpq URL, ``postgresql://user:password@host:5432/dbname``.
        pool_size: the most connections this process opens for reads and writes (one
            more listens for notifications).
        connect_timeout: seconds `open` waits for the first connection.
    """

    pushes_changes = True

    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout: float = 30.0) -> None:
        self.url = url
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._pool = self._new_pool()
        self._channel = "agentflow"
        self._listener: Conn | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._committer = GroupCommitter(self._write_commits)
        self._opened = False

    def _new_pool(self) -> AsyncConnectionPool[Conn]:
        return AsyncConnectionPool(self.url, min_size=1, max_size=self._pool_size, open=False,
                                   kwargs={"autocommit": True}, name="agentflow",
                                   timeout=self._connect_timeout)

    # -- lifecycle -----------------------------------------------------------------
    async def open(self) -> None:
        if self._opened:
            return
        # A closed pool cannot be opened again, and events belong to one event loop:
        # a store reopened (perhaps under another loop) starts from fresh ones.
        self._pool = self._new_pool()
        self._changed = asyncio.Event()
        # The listening connection first: if the server cannot be reached, its error
        # says why at once (the pool would only time out).
        listener = await AsyncConnection.connect(self.url, autocommit=True,
                                                 connect_timeout=int(self._connect_timeout))
        try:
            await self._pool.open(wait=True, timeout=self._connect_timeout)
            schema = await self._write(self._migrate, idempotent=True)
            # Channel names are identifiers: at most 63 bytes.
            self._channel = f"agentflow:{schema}".encode()[:63].decode(errors="ignore")
            await self._listen_on(listener)
        except BaseException:
            await listener.close()
            await self._pool.close()
            raise
        self._listener = listener
        self._opened = True
        self._listen_task = asyncio.create_task(self._listen(), name="agentflow-listen")
        self._committer.start()

    async def close(self) -> None:
        if not self._opened:
            return
        await self._committer.stop()  # commits that arrived while closing still land
        if self._listen_task is not None:
            self._listen_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen_task
            self._listen_task = None
        if self._listener is not None:
            with contextlib.suppress(psycopg.Error):
                await self._listener.close()
            self._listener = None
        await self._pool.close()
        self._opened = False

    async def _migrate(self, conn: Conn) -> str:
        # One advisory lock per schema: workers starting together migrate it once.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema()"
                           " || '.agentflow.migrate'))")
        await conn.execute("CREATE TABLE IF NOT EXISTS agentflow_schema"
                           " (version integer NOT NULL)")
        cur = await conn.execute("SELECT version FROM agentflow_schema")
        row = await cur.fetchone()
        if row is None:
            await conn.execute("INSERT INTO agentflow_schema (version) VALUES (0)")
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise InvalidArgumentError(
                f"the PostgreSQL schema has agentflow schema version {version}, written by a "
                f"newer agentflow (this one knows up to {SCHEMA_VERSION}); upgrade agentflow "
                f"to use it")
        for number, statements in MIGRATIONS:
            if number > version:
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute("UPDATE agentflow_schema SET version = %s", (number,))
        cur = await conn.execute("SELECT current_schema()")
        found = await cur.fetchone()
        return str(found[0]) if found else "public"

    async def schema_version(self) -> int:
        rows = await self._read("SELECT version FROM agentflow_schema", ())
        return int(rows[0][0]) if rows else 0

    # -- running statements --------------------------------------------------------
    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt``; only if it fails transiently, retry it with backoff."""
        try:
            return await attempt()
        except Exception as exc:
            if not _is_transient(exc):
                raise
            log.info("transient PostgreSQL error, retrying: %s", exc)
        async for retry in AsyncRetrying(retry=retry_if_exception(_is_transient),
                                         reraise=True, stop=stop_after_delay(_RETRY_SECONDS),
                                         wait=wait_random_exponential(multiplier=0.01,
                                                                      max=1.0)):
            with retry:
                return await attempt()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write(self, body: Callable[[Conn], Awaitable[T]], *,
                     idempotent: bool = False) -> T:
        """One transaction, in pipeline mode (statements go out without waiting for
        each other's answers until a result is read), retried if it fails transiently."""
        async def attempt() -> T:
            async with self._pool.connection() as conn:
                committing = False
                try:
                    async with conn.pipeline(), conn.transaction():
                        value = await body(conn)
                        committing = True
                except psycopg.OperationalError as exc:
                    if committing and not idempotent and _is_transient(exc):
                        raise CommitOutcomeUnknownError(
                            f"the connection to PostgreSQL was lost while committing: "
                            f"{exc}") from exc
                    raise
                return value
        return await self._retrying(attempt)

    async def _read(self, query: str, params: Sequence[Any] | dict[str, Any]
                    ) -> list[tuple[Any, ...]]:
        """One statement in autocommit mode (one round trip), retried if transient."""
        async def attempt() -> list[tuple[Any, ...]]:
            async with self._pool.connection() as conn:
                cur = await conn.execute(query, params)
                return await cur.fetchall()
        return await self._retrying(attempt)

    async def _notify(self, conn: Conn) -> None:
        """Wake other processes' schedulers when this transaction commits."""
        await conn.execute("SELECT pg_notify(%s, '')", (self._channel,))

    # -- the change feed -------------------------------------------------------------
    async def _listen_on(self, conn: Conn) -> None:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))

    async def _listen_connection(self) -> Conn:
        conn = await AsyncConnection.connect(self.url, autocommit=True,
                                             connect_timeout=int(self._connect_timeout))
        try:
            await self._listen_on(conn)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _listen(self) -> None:
        """Turn notifications into `_changed`; reconnect if the connection is lost."""
        delay = 0.05
        while True:
            conn = self._listener
            try:
                if conn is None or conn.closed:
                    conn = self._listener = await self._listen_connection()
                    self._changed.set()  # anything may have happened while deaf
                    delay = 0.05
                async for _ in conn.notifies():
                    self._changed.set()
            except psycopg.Error as exc:
                log.warning("listening for changes failed (%s); reconnecting in %.2fs",
                            exc, delay)
                if self._listener is not None:
                    with contextlib.suppress(psycopg.Error):
                        await self._listener.close()
                self._listener = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def wait_for_change(self, timeout: float) -> None:
        if not self._changed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        self._changed.clear()

    # -- instances -----------------------------------------------------------------
    async def create_instances(self, rows: Sequence[NewInstance]) -> list[str]:
        fresh: dict[str, NewInstance] = {}
        for r in rows:
            fresh.setdefault(r.id, r)
        if not fresh:
            return []
        new = list(fresh.values())

        async def body(conn: Conn) -> list[str]:
            cur = await conn.execute(
                "INSERT INTO instances (id, workflow, status, payload, created_at, updated_at,"
                " due_at, fence, scope) SELECT id, workflow, 'queued', payload, created_at,"
                " created_at, created_at, 0, scope FROM unnest(%s::text[], %s::text[],"
                " %s::text[], %s::float8[], %s::text[]) AS n(id, workflow, payload,"
                " created_at, scope) ON CONFLICT (id) DO NOTHING RETURNING id",
                ([r.id for r in new], [r.workflow for r in new], [r.payload for r in new],
                 _floats([r.created_at for r in new]), [r.scope for r in new]))
            made = {r[0] for r in await cur.fetchall()}
            if made:
                await self._notify(conn)
            return [i for i in fresh if i in made]
        return await self._write(body)

    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        rows = await self._read(f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE id = %s",
                                (instance_id,))
        return _instance(rows[0]) if rows else None

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
                where.append(f"{column} = ANY(%s::text[])")
                params.append(list(values))
        if plans is not None:  # agent plans carry their name in the payload's envelope
            where.append("(payload::json -> '__dispatcher_metadata' ->> 'plan')"
                         " = ANY(%s::text[])")
            params.append(list(plans))
        if before is not None:
            where.append("(created_at < %s OR (created_at = %s AND id > %s))")
            params.extend([before[0], before[0], before[1]])
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._read(f"SELECT {_INSTANCE_COLUMNS} FROM instances {clause}"
                                " ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
                                [*params, limit, offset])
        return [_instance(r) for r in rows]

    async def transition(self, instance_id: str,
                         decide: Callable[[InstanceRow], InstanceChange | None]
                         ) -> InstanceRow | None:
        async def body(conn: Conn) -> InstanceRow | None:
            row = await _get_instance(conn, instance_id, lock=True)
            if row is None:
                return None
            change = decide(row)
            if change is None:
                return row
            await self._apply_change(conn, row, change)
            return await _get_instance(conn, instance_id)
        return await self._write(body)

    async def _apply_change(self, conn: Conn, row: InstanceRow, change: InstanceChange
                            ) -> None:
        sets: list[str] = ["updated_at = %s"]
        params: list[Any] = [max(row.updated_at, change.at)]
        for column in ("status", "payload"):
            value = getattr(change, column)
            if value is not None:
                sets.append(f"{column} = %s")
                params.append(value)
        for column in ("due_at", "output", "error", "waiting_on"):
            value = getattr(change, column)
            if value is not ...:
                sets.append(f"{column} = %s")
                params.append(float(value) if column == "due_at" and value is not None
                              else value)
        if change.bump_fence:
            sets.append("fence = fence + 1")
        if change.clear_lease:
            sets.append("lease_owner = NULL, lease_until = NULL")
        await conn.execute(f"UPDATE instances SET {', '.join(sets)} WHERE id = %s",
                           [*params, row.id])
        if change.delete_steps_from is not None:
            await conn.execute("DELETE FROM events WHERE instance_id = %s AND"
                               " (consumed_seq >= %s OR consumed_seq IS NULL)",
                               (row.id, change.delete_steps_from))
            await conn.execute("DELETE FROM steps WHERE instance_id = %s AND seq >= %s",
                               (row.id, change.delete_steps_from))
        if change.due_at is not ... and change.due_at is not None:
            await self._notify(conn)  # it is due (now or later): someone must look

    # -- scheduling ----------------------------------------------------------------
    async def claim_due_instances(self, *, owner: str, workflows: Sequence[str], now: float,
                                  lease_now: float, lease_until: float, limit: int
                                  ) -> list[InstanceRow]:
        if not workflows or limit <= 0:
            return []
        # An instance whose holder died while it was waiting_for_pause is paused here
        # instead of claimed, as in the SQLite store.
        pausing = "i.status = 'waiting_for_pause'"
        # One statement, so a claim whose COMMIT was lost may be run again: the first
        # one's instances then wait out their lease, which is safe.
        rows = await self._read(
            "WITH due AS (SELECT id FROM instances WHERE due_at <= %(now)s"
            " AND workflow = ANY(%(workflows)s::text[])"
            " AND (lease_until IS NULL OR lease_until < %(lease_now)s)"
            " ORDER BY due_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
            f" UPDATE instances i SET"
            f" status = CASE WHEN {pausing} THEN 'paused' ELSE 'running' END,"
            f" lease_owner = CASE WHEN {pausing} THEN NULL ELSE %(owner)s END,"
            f" lease_until = CASE WHEN {pausing} THEN NULL ELSE %(lease_until)s END,"
            f" due_at = CASE WHEN {pausing} THEN NULL ELSE i.due_at END,"
            " fence = i.fence + 1, updated_at = %(now)s FROM due WHERE i.id = due.id"
            f" RETURNING {', '.join('i.' + c.strip() for c in _INSTANCE_COLUMNS.split(','))}",
            {"now": float(now), "workflows": list(workflows), "lease_now": float(lease_now),
             "limit": limit, "owner": owner, "lease_until": float(lease_until)})
        claimed = [_instance(r) for r in rows if r[2] == "running"]
        claimed.sort(key=lambda r: (r.due_at if r.due_at is not None else 0.0, r.id))
        return claimed

    async def next_due_at(self, workflows: Sequence[str], *, lease_now: float) -> float | None:
        if not workflows:
            return None
        rows = await self._read(
            "SELECT due_at FROM instances WHERE due_at IS NOT NULL"
            " AND workflow = ANY(%s::text[]) AND (lease_until IS NULL OR lease_until < %s)"
            " ORDER BY due_at LIMIT 1", (list(workflows), float(lease_now)))
        return None if not rows else float(rows[0][0])

    async def renew_leases(self, *, owner: str, instance_ids: Sequence[str],
                           lease_until: float) -> None:
        if instance_ids:
            await self._read("UPDATE instances SET lease_until = %s WHERE lease_owner = %s"
                             " AND id = ANY(%s::text[]) RETURNING 1",
                             (float(lease_until), owner, sorted(instance_ids)))

    async def release_leases(self, *, owner: str, instance_ids: Sequence[str],
                             now: float) -> None:
        async def body(conn: Conn) -> None:
            await conn.execute(
                "UPDATE instances SET lease_owner = NULL, lease_until = NULL,"
                " fence = fence + 1, due_at = CASE WHEN status IN ('running',"
                " 'waiting_for_pause') THEN %s ELSE due_at END,"
                " status = CASE WHEN status = 'running' THEN 'queued' ELSE status END"
                " WHERE lease_owner = %s AND id = ANY(%s::text[])",
                (float(now), owner, sorted(instance_ids)))
            await self._notify(conn)
        if instance_ids:
            await self._write(body, idempotent=True)

    # -- journal and events --------------------------------------------------------
    async def load_journal(self, instance_id: str) -> list[JournalRow]:
        rows = await self._read(f"SELECT {_STEP_COLUMNS} FROM steps WHERE instance_id = %s"
                                " ORDER BY seq", (instance_id,))
        return [JournalRow(*r) for r in rows]

    async def commit(self, commit: RunCommit) -> CommitResult:
        return await self._committer.submit(commit)

    async def _write_commits(self, commits: list[RunCommit]) -> list[CommitResult]:
        # Idempotent: written again after a lost COMMIT, the same rows come out.
        return await self._write(lambda conn: self._write_batch(conn, commits),
                                 idempotent=True)

    async def _write_batch(self, conn: Conn, commits: list[RunCommit]) -> list[CommitResult]:
        """Apply many runners' commits in the current transaction, each under its fence."""
        ids = sorted({c.instance_id for c in commits})
        waiters = sorted({c.instance_id for c in commits if c.finish and c.finish.wake_types})
        fences = await conn.execute("SELECT id, fence, status FROM instances"
                                    " WHERE id = ANY(%s::text[]) ORDER BY id FOR UPDATE",
                                    (ids,))
        pending = None
        if waiters:  # sent before the fences are read: one round trip for both
            pending = await conn.execute(
                "SELECT DISTINCT instance_id, type FROM events WHERE consumed_seq IS NULL"
                " AND instance_id = ANY(%s::text[])", (waiters,))
        current: dict[str, tuple[int, str]] = {
            r[0]: (r[1], r[2]) for r in await fences.fetchall()}
        buffered = {(r[0], r[1]) for r in await pending.fetchall()} if pending else set()
        accepted = [c for c in commits if current.get(c.instance_id, (None,))[0] == c.fence]

        steps: dict[tuple[str, int], JournalRow] = {}
        for c in accepted:
            for s in c.steps:
                steps[(c.instance_id, s.seq)] = s  # the last write of a position wins
        if steps:
            rows = list(steps.values())
            await conn.execute(
                f"INSERT INTO steps (instance_id, {_STEP_COLUMNS}) SELECT * FROM unnest("
                "%s::text[], %s::int[], %s::text[], %s::int[], %s::text[], %s::text[],"
                " %s::int[], %s::float8[], %s::text[], %s::text[], %s::float8[],"
                " %s::float8[]) ON CONFLICT (instance_id, seq) DO UPDATE SET"
                " name = excluded.name, n = excluded.n, kind = excluded.kind,"
                " status = excluded.status, attempts = excluded.attempts,"
                " started_at = excluded.started_at, result = excluded.result,"
                " error = excluded.error, finished_at = excluded.finished_at,"
                " wake_at = excluded.wake_at",
                ([k[0] for k in steps], [s.seq for s in rows], [s.name for s in rows],
                 [s.n for s in rows], [s.kind for s in rows], [s.status for s in rows],
                 [s.attempts for s in rows], _floats([s.started_at for s in rows]),
                 [s.result for s in rows], [s.error for s in rows],
                 _floats([s.finished_at for s in rows]), _floats([s.wake_at for s in rows])))
        consumed = [(event_id, seq) for c in accepted for event_id, seq in c.consumed_events]
        if consumed:
            await conn.execute(
                "UPDATE events e SET consumed_seq = u.seq FROM unnest(%s::bigint[],"
                " %s::int[]) AS u(id, seq) WHERE e.id = u.id",
                ([e for e, _ in consumed], [s for _, s in consumed]))
        updates: list[tuple[Any, ...]] = []
        wakes_someone = False
        for c in accepted:
            f = c.finish
            if f is None:
                continue
            status, due_at = f.status, f.due_at
            if any((c.instance_id, t) in buffered for t in f.wake_types):
                status, due_at = "queued", f.at  # an awaited event is already here: run again
            if current[c.instance_id][1] == "waiting_for_pause" and status in ("waiting",
                                                                                 "queued"):
                status, due_at = "paused", None
            wakes_someone = wakes_someone or due_at is not None
            updates.append((c.instance_id, status, f.output, f.error, f.waiting_on, due_at,
                            f.at, c.fence))
            current[c.instance_id] = (c.fence, status)
        if updates:
            cols = list(zip(*updates, strict=True))
            await conn.execute(
                "UPDATE instances i SET status = u.status, output = u.output,"
                " error = u.error, waiting_on = u.waiting_on, due_at = u.due_at,"
                " updated_at = greatest(u.at, i.updated_at), lease_owner = NULL,"
                " lease_until = NULL FROM unnest(%s::text[], %s::text[], %s::text[],"
                " %s::text[], %s::text[], %s::float8[], %s::float8[], %s::bigint[])"
                " AS u(id, status, output, error, waiting_on, due_at, at, fence)"
                " WHERE i.id = u.id AND i.fence = u.fence",
                (list(cols[0]), list(cols[1]), list(cols[2]), list(cols[3]), list(cols[4]),
                 _floats(cols[5]), _floats(cols[6]), list(cols[7])))
        if wakes_someone:  # a timer or a wake-up: other workers must recompute their sleep
            await self._notify(conn)
        return [CommitResult(ok=current.get(c.instance_id, (None,))[0] == c.fence,
                             status=current.get(c.instance_id, (None, None))[1])
                for c in commits]

    async def add_event(self, instance_id: str, type: str, payload: str, now: float,
                        decide: Callable[[InstanceRow], InstanceChange | None]) -> bool:
        async def body(conn: Conn) -> bool:
            row = await _get_instance(conn, instance_id, lock=True)
            if row is None:
                return False
            change = decide(row)
            await conn.execute("INSERT INTO events (instance_id, type, payload, created_at)"
                               " VALUES (%s, %s, %s, %s)",
                               (instance_id, type, payload, float(now)))
            if change is not None:
                await self._apply_change(conn, row, change)
            return True
        return await self._write(body)

    async def pending_events(self, instance_id: str, type: str, *, exclude: Sequence[int] = (),
                             limit: int = 1) -> list[EventRow]:
        rows = await self._read(
            "SELECT id, instance_id, type, payload, created_at FROM events"
            " WHERE instance_id = %s AND type = %s AND consumed_seq IS NULL"
            " AND NOT (id = ANY(%s::bigint[])) ORDER BY id LIMIT %s",
            (instance_id, type, list(exclude), limit))
        return [EventRow(*r) for r in rows]

    # -- plan versions and key-value -----------------------------------------------
    async def put_plan_version(self, plan: PlanRow) -> PlanRow:
        async def body(conn: Conn) -> PlanRow:
            await conn.execute("INSERT INTO plan_versions (scope, name, version, source,"
                               " created_at, created_by) VALUES (%s, %s, %s, %s, %s, %s)"
                               " ON CONFLICT DO NOTHING",
                               (plan.scope, plan.name, plan.version, plan.source,
                                float(plan.created_at), plan.created_by))
            await conn.execute("INSERT INTO plans (scope, name, current_version, updated_at)"
                               " VALUES (%s, %s, %s, %s) ON CONFLICT (scope, name) DO UPDATE"
                               " SET current_version = excluded.current_version,"
                               " updated_at = excluded.updated_at",
                               (plan.scope, plan.name, plan.version, float(plan.created_at)))
            stored = await _plan(conn, plan.scope, plan.name, plan.version)
            assert stored is not None
            return stored
        return await self._write(body, idempotent=True)

    async def get_plan_version(self, scope: str, name: str, version: str | None = None
                               ) -> PlanRow | None:
        async def attempt() -> PlanRow | None:
            async with self._pool.connection() as conn:
                return await _plan(conn, scope, name, version)
        return await self._retrying(attempt)

    async def list_plans(self, scope: str | None) -> list[PlanRow]:
        where = "WHERE v.scope = %s" if scope is not None else ""
        rows = await self._read(
            f"{_PLAN_SELECT} JOIN plans p ON p.scope = v.scope AND p.name = v.name"
            f" AND p.current_version = v.version {where} ORDER BY v.scope, v.name",
            (scope,) if scope is not None else ())
        return [_plan_row(r) for r in rows]

    async def list_plan_versions(self, scope: str, name: str) -> list[PlanRow]:
        rows = await self._read(
            f"{_PLAN_SELECT} LEFT JOIN plans p ON p.scope = v.scope AND p.name = v.name"
            " WHERE v.scope = %s AND v.name = %s ORDER BY v.created_at, v.seq", (scope, name))
        return [_plan_row(r) for r in rows]

    # -- the change feed (rows written by the triggers of migration 3) ----------------
    async def read_changes(self, after: int, limit: int = 500) -> list[ChangeRow]:
        pending = await self._read("SELECT 1 FROM changes WHERE seq IS NULL LIMIT 1", ())
        if pending:
            await self._write(_number_changes, idempotent=True)
        rows = await self._read(f"SELECT {_CHANGE_COLUMNS} FROM changes WHERE seq > %s "
                                "ORDER BY seq LIMIT %s", (after, limit))
        return [ChangeRow(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], float(r[7]))
                for r in rows]

    async def last_change(self) -> int:
        rows = await self._read("SELECT max(seq) FROM changes", ())
        return int(rows[0][0] or 0) if rows else 0

    async def kv_get(self, scope: str, key: str) -> str | None:
        rows = await self._read("SELECT value FROM kv WHERE scope = %s AND key = %s",
                                (scope, key))
        return None if not rows else str(rows[0][0])

    async def kv_set(self, scope: str, key: str, value: str, now: float) -> None:
        await self._read("INSERT INTO kv (scope, key, value, updated_at)"
                         " VALUES (%s, %s, %s, %s) ON CONFLICT (scope, key) DO UPDATE"
                         " SET value = excluded.value, updated_at = excluded.updated_at"
                         " RETURNING 1", (scope, key, value, float(now)))

    async def kv_delete(self, scope: str, key: str) -> bool:
        rows = await self._read("DELETE FROM kv WHERE scope = %s AND key = %s RETURNING 1",
                                (scope, key))
        return bool(rows)

    async def kv_list(self, scope: str, prefix: str = "", limit: int = 1000) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = await self._read("SELECT key FROM kv WHERE scope = %s AND key LIKE %s"
                                " ESCAPE '\\' ORDER BY key LIMIT %s",
                                (scope, escaped + "%", limit))
        return [str(r[0]) for r in rows]


_PLAN_SELECT = ("SELECT v.scope, v.name, v.version, v.source, v.created_at, v.created_by,"
                " coalesce(p.current_version = v.version, false) FROM plan_versions v")


async def _number_changes(conn: Conn) -> None:
    """Number the committed, unnumbered changes in the order they were written, under a
    lock that makes numbering transactions commit one after another (see migration 3)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema()"
                       " || '.agentflow.changes'))")
    await conn.execute(
        "WITH top AS (SELECT coalesce(max(seq), 0) AS n FROM changes),"
        " fresh AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM changes"
        " WHERE seq IS NULL)"
        " UPDATE changes c SET seq = top.n + fresh.k FROM top, fresh WHERE c.id = fresh.id")


def _plan_row(r: Sequence[Any]) -> PlanRow:
    return PlanRow(r[0], r[1], r[2], r[3], r[4], r[5], current=bool(r[6]))


async def _plan(conn: Conn, scope: str, name: str, version: str | None) -> PlanRow | None:
    if version is None:
        cur = await conn.execute(
            f"{_PLAN_SELECT} JOIN plans p ON p.scope = v.scope AND p.name = v.name"
            " AND p.current_version = v.version WHERE v.scope = %s AND v.name = %s",
            (scope, name))
    else:
        cur = await conn.execute(
            f"{_PLAN_SELECT} LEFT JOIN plans p ON p.scope = v.scope AND p.name = v.name"
            " WHERE v.scope = %s AND v.name = %s AND v.version = %s", (scope, name, version))
    row = await cur.fetchone()
    return None if row is None else _plan_row(row)
