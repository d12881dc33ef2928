"""The store for many workers on many machines: PostgreSQL, through psycopg 3.

Install with ``pip install "agentflow[postgres]"`` and name the database with a
``postgresql://`` (or ``postgres://``) URL. Importing ``agentflow`` never imports this
module or psycopg: `agentflow.store.open_store` imports it only for such a URL.

The rules (claims, leases, fencing, pause, the group commit, events) are in
``_sql.py``, shared with SQLite; this module drives them on psycopg connections and
keeps what only PostgreSQL has: ``FOR UPDATE SKIP LOCKED``, LISTEN/NOTIFY, a pool,
retries of transient errors, and its migrations.

How it keeps the store contract (``agentflow.store._base``), and why it is shaped so:

- **Claims** are one statement, ``WITH due AS (SELECT ... FOR UPDATE SKIP LOCKED)
  UPDATE ...``:
  concurrent claimers on any number of machines skip each other's rows instead of
  waiting on them, and each due row goes to exactly one of them with a bumped fence.
- **Fencing.** A group commit first locks the rows of its instances (``FOR UPDATE``, in
  id order so that two batches cannot deadlock) and reads their fences; a commit whose
  fence moved on writes nothing. While the lock is held no claim can take the row (it
  skips it), so nothing can slip between the check and the writes.
- **Group commit**, as in the SQLite store: runners' commits queue up and one task
  writes each queue as one transaction, in pipeline mode (statements, and the rows of
  ``executemany``, go out without waiting for each other's answers) so that the batch
  costs two round trips and one WAL flush. A runner's `commit` returns once it is durable.
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
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg import AsyncConnection, errors, sql
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_random_exponential

from agentflow.errors import (
    CommitOutcomeUnknownError,
    InvalidArgumentError,
    StoreUnavailableError,
)
from agentflow.store._base import CommitResult, RunCommit
from agentflow.store._pg_migrations import MIGRATIONS, SCHEMA_VERSION
from agentflow.store._rules import one, write_batch
from agentflow.store._sql import Body, Dialect, Do, Done, Many, Op, Q, advance
from agentflow.store._sqlstore import SQLStore

__all__ = ["CommitOutcomeUnknownError", "PostgresStore", "PostgresUnavailableError"]

log = logging.getLogger("agentflow.store.postgres")

T = TypeVar("T")
Conn = AsyncConnection[Any]

_RETRY_SECONDS = 60.0
POSTGRES = Dialect(for_update=" FOR UPDATE", skip_locked=" FOR UPDATE SKIP LOCKED",
                   greatest="greatest", submitted_order="v.seq", octets="octet_length({})",
                   scope_lock="SELECT pg_advisory_xact_lock(hashtext(?))",
                   plan_of_payload="(payload::json -> '__dispatcher_metadata' ->> 'plan')",
                   # the server's clock (not the transaction's start): one clock for
                   # every worker on every machine
                   db_now="extract(epoch from clock_timestamp())::float8")


class PostgresUnavailableError(StoreUnavailableError, psycopg.OperationalError):
    """PostgreSQL could not be reached (or kept failing) past the store's retries;
    the transaction did not commit, so nothing was changed."""


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


@functools.lru_cache(maxsize=512)
def _pg(statement: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s``."""
    return statement.replace("?", "%s")


class PostgresStore(SQLStore):
    """PostgreSQL, for workers on several machines sharing one database.

    Args:
        url: a libpq URL, ``postgresql://user:password@host:5432/dbname``.
        pool_size: the most connections this process opens for reads and writes (one
            more listens for notifications).
        connect_timeout: seconds `open` waits for the first connection.
    """

    pushes_changes = True
    dialect = POSTGRES

    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout: float = 30.0) -> None:
        super().__init__()
        self.url = url
        self._pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._pool = self._new_pool()
        self._channel = "agentflow"
        self._listener: Conn | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
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
            schema = await self._transaction(self._migrate, idempotent=True)
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
        rows = await self._read(lambda: one(Q("SELECT version FROM agentflow_schema")))
        return int(rows[0][0]) if rows else 0

    # -- running statements --------------------------------------------------------
    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt``; only if it fails transiently, retry it with backoff."""
        try:
            return await attempt()
        except PoolTimeout as exc:  # the pool waited connect_timeout for a connection
            raise PostgresUnavailableError(
                f"the database is unavailable: no connection to PostgreSQL within"
                f" {self._connect_timeout:g} s ({exc}), so nothing was changed; try again "
                "later") from exc
        except Exception as exc:
            if not _is_transient(exc):
                raise
            log.info("transient PostgreSQL error, retrying: %s", exc)
        try:
            async for retry in AsyncRetrying(retry=retry_if_exception(_is_transient),
                                             reraise=True,
                                             stop=stop_after_delay(_RETRY_SECONDS),
                                             wait=wait_random_exponential(multiplier=0.01,
                                                                          max=1.0)):
                with retry:
                    return await attempt()
        except psycopg.OperationalError as exc:
            if isinstance(exc, StoreUnavailableError) or not _is_transient(exc):
                raise
            raise PostgresUnavailableError(
                f"the database is unavailable: PostgreSQL kept failing for"
                f" {_RETRY_SECONDS:g} s of retries ({exc}), so nothing was changed; try "
                "again later") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _transaction(self, body: Callable[[Conn], Awaitable[T]], *,
                           idempotent: bool = False) -> T:
        """``body(conn)`` as one transaction, in pipeline mode (statements go out without
        waiting for each other's answers until a result is read), retried if it fails
        transiently."""
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

    async def _write(self, body: Callable[[], Body[T]], *, idempotent: bool = False) -> T:
        return await self._transaction(lambda conn: self._drive(conn, body()),
                                       idempotent=idempotent)

    async def _read(self, body: Callable[[], Body[T]]) -> T:
        """Statements in autocommit mode (a read is mostly one round trip), retried if
        transient."""
        async def attempt() -> T:
            async with self._pool.connection() as conn:
                return await self._drive(conn, body())
        return await self._retrying(attempt)

    async def _drive(self, conn: Conn, body: Body[T]) -> T:
        """Run a transaction body (``_sql.py``) to its end on this connection."""
        answer: Any = None
        while not isinstance(op := advance(body, answer), Done):
            answer = await self._run(conn, op)
        return op.value  # type: ignore[no-any-return]

    async def _run(self, conn: Conn, op: Op) -> Any:
        if isinstance(op, tuple):  # all sent before any answer is awaited
            sent = [await conn.execute(_pg(q.sql), q.params) for q in op]
            return [await cur.fetchall() for cur in sent]
        if isinstance(op, Q):
            return await (await conn.execute(_pg(op.sql), op.params)).fetchall()
        if isinstance(op, Many):
            async with conn.cursor() as cur:
                await cur.executemany(_pg(op.sql), op.rows)
        elif isinstance(op, Do):
            await conn.execute(_pg(op.sql), op.params)
        else:  # NOTIFY: wake other processes' schedulers when this transaction commits
            await conn.execute("SELECT pg_notify(%s, '')", (self._channel,))
        return None

    async def _number_changes(self) -> None:
        """Number the committed, unnumbered changes in the order they were written,
        under a lock that makes numbering transactions commit one after another (see
        migration 6: a number taken by the trigger would not be commit-ordered)."""
        if not await self._read(lambda: one(Q(
                "SELECT 1 FROM changes WHERE seq IS NULL LIMIT 1"))):
            return
        await self._write(_number_changes, idempotent=True)

    async def _write_commits(self, commits: list[RunCommit]) -> list[CommitResult]:
        # Idempotent: written again after a lost COMMIT, the same rows come out.
        return await self._transaction(lambda conn: self._write_batch(conn, commits),
                                       idempotent=True)

    async def _write_batch(self, conn: Conn, commits: list[RunCommit]) -> list[CommitResult]:
        """Apply many runners' commits in the current transaction, each under its fence."""
        return await self._drive(conn, write_batch(self.dialect, commits))

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


def _number_changes() -> Body[None]:
    yield Do("SELECT pg_advisory_xact_lock(hashtext(current_schema()"
             " || '.agentflow.changes'))")
    yield Do("WITH top AS (SELECT coalesce(max(seq), 0) AS n FROM changes),"
             " fresh AS (SELECT id, row_number() OVER (ORDER BY id) AS k FROM changes"
             " WHERE seq IS NULL)"
             " UPDATE changes c SET seq = top.n + fresh.k FROM top, fresh WHERE c.id = fresh.id")
