"""The embedded default store: one SQLite file in WAL mode, through stdlib ``sqlite3``.

The rules (claims, leases, fencing, pause, the group commit, events) are in
``_sql.py``, shared with PostgreSQL; this module only drives them: a connection per
thread, one transaction per hop, WAL, retries of a busy file, and migrations.

Why it is shaped this way (each choice was measured; see ``bench/README.md``):

- **A write transaction is one thread hop.** sqlite3 blocks, so each connection has
  its own thread (`_ConnectionThread`, the pattern aiosqlite uses) and every call is a
  hop to it; each hop costs ~70-100 us of handoff, more than SQLite's own work for a
  small statement. So every write transaction here is one plain function,
  ``BEGIN IMMEDIATE`` to ``COMMIT``, that drives a whole transaction body in a single
  hop. Because that thread runs one function at a time, transactions never interleave
  and need no lock on the event loop. (Four hops per step cost 577 us, one hop 270 us,
  against a 180 us floor for plain sqlite3.) aiosqlite offers a hop per statement in
  its public API only; running a whole function on its thread needed its private
  ``_execute``, so the thread is our own, in thirty lines.
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

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from agentflow.errors import InvalidArgumentError, StoreUnavailableError
from agentflow.store._migrations import MIGRATIONS, SCHEMA_VERSION
from agentflow.store._sql import Body, Dialect, Do, Done, Many, Op, Q, advance
from agentflow.store._sqlstore import SQLStore

__all__ = ["DatabaseLockedError", "SQLiteStore"]

T = TypeVar("T")
Db = sqlite3.Connection

_BUSY_RETRY_SECONDS = 60.0
SQLITE = Dialect(
    # INDEXED BY: with many sleepers the planner would otherwise pick the listing
    # index on workflow and sort every row of it (seen: +75 ms per claim).
    due_index=" INDEXED BY instances_due", greatest="max", submitted_order="v.rowid")


class DatabaseLockedError(StoreUnavailableError, sqlite3.OperationalError):
    """Another process held the SQLite file's lock past the store's retries; nothing
    was changed (the transaction was rolled back)."""


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


def _drive(db: Db, body: Body[T]) -> T:
    """Run a transaction body (``_sql.py``) to its end on this connection."""
    answer: Any = None
    while not isinstance(op := advance(body, answer), Done):
        answer = _run(db, op)
    return op.value  # type: ignore[no-any-return]


def _run(db: Db, op: Op) -> Any:
    if isinstance(op, Q):
        return db.execute(op.sql, op.params).fetchall()
    if isinstance(op, tuple):
        return [db.execute(q.sql, q.params).fetchall() for q in op]
    if isinstance(op, Many):
        db.executemany(op.sql, op.rows)
    elif isinstance(op, Do):
        db.execute(op.sql, op.params)
    return None  # and NOTIFY: other processes find SQLite's changes by polling


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


def _settle(fut: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if fut.done():  # the caller was cancelled; the call itself still ran
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


class _ConnectionThread:
    """One sqlite3 connection and the one thread that uses it: `run` hands a function
    to the thread and awaits its result, so the event loop never blocks on the file."""

    def __init__(self) -> None:
        self._calls: SimpleQueue[tuple[asyncio.Future[Any], Callable[[], Any]] | None] = (
            SimpleQueue())
        # A daemon: a store never closed must not keep the interpreter alive at exit.
        self._thread = threading.Thread(target=self._serve, name="agentflow-sqlite",
                                        daemon=True)
        self._thread.start()
        self.db: Db | None = None

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            fut, fn = call
            value: Any = None
            error: BaseException | None = None
            try:
                value = fn()
            except BaseException as exc:  # handed to the awaiting task, not lost here
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                fut.get_loop().call_soon_threadsafe(_settle, fut, value, error)

    async def run(self, fn: Callable[[Db], T]) -> T:
        db = self.db
        if db is None:
            raise RuntimeError("the store is not open")
        return await self._call(lambda: fn(db))

    async def _call(self, fn: Callable[[], T]) -> T:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._calls.put((fut, fn))
        return await fut

    async def connect(self, path: str) -> None:
        self.db = await self._call(lambda: sqlite3.connect(
            path, isolation_level=None, check_same_thread=False))

    async def close(self) -> None:
        db, self.db = self.db, None
        try:
            if db is not None:
                await self._call(db.close)
        finally:
            self._calls.put(None)
            await asyncio.to_thread(self._thread.join)


class SQLiteStore(SQLStore):
    """SQLite in WAL mode. ``path`` is a file path, or ``":memory:"`` for a private
    in-memory database.

    Args:
        path: the database file; created with its schema if missing.
        busy_timeout: seconds a statement waits for another process's write lock
            before tenacity takes over the retrying.
    """

    dialect = SQLITE

    def __init__(self, path: str, *, busy_timeout: float = 5.0) -> None:
        super().__init__()
        self.path = path
        self.url = "memory://" if path == ":memory:" else f"sqlite:///{path}"
        self._busy_timeout = busy_timeout
        self._writer: _ConnectionThread | None = None
        self._reader: _ConnectionThread | None = None

    # -- lifecycle -----------------------------------------------------------------
    async def open(self) -> None:
        try:
            self._writer = await self._connect()
            # A read first: a database already at this version needs no write lock to
            # open (another process may hold it), and a foreign file is refused untouched.
            version = await self._writer.run(lambda db: _check_schema(db, self.path))
            if version < SCHEMA_VERSION:
                await self._writer.run(lambda db: self._transaction(
                    db, lambda: _migrate(db, self.path)))
            self._reader = self._writer if self.path == ":memory:" else await self._connect()
        except BaseException:
            await self._close_connections()  # their threads would outlive the store
            raise
        self._committer.start()

    async def _connect(self) -> _ConnectionThread:
        if self.path != ":memory:":
            _check_folder(self.path)  # else SQLite says only "unable to open database file"
        conn = _ConnectionThread()
        async with contextlib.AsyncExitStack() as on_failure:
            on_failure.push_async_callback(conn.close)  # else its thread outlives the store
            await conn.connect(self.path)

            def setup(db: Db) -> None:
                db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
                # Only a new, empty file takes this (before its first table and before
                # WAL): space that retention frees can then go back to the file system
                # page by page (`reclaim_space`). A file made before needs one
                # `reclaim_space(full=True)` (VACUUM) to switch.
                if db.execute("PRAGMA page_count").fetchone()[0] == 0:  # a new file
                    db.execute("PRAGMA auto_vacuum = INCREMENTAL")
                if self.path != ":memory:":
                    _retry_busy(lambda: db.execute("PRAGMA journal_mode = WAL").fetchone())
                db.execute("PRAGMA synchronous = FULL")
            await conn.run(setup)
            on_failure.pop_all()
        return conn

    async def _close_connections(self) -> None:
        opened = {id(c): c for c in (self._reader, self._writer) if c is not None}
        self._reader = self._writer = None
        for conn in opened.values():
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        await self._committer.stop()  # commits that arrived while closing still land
        await self._close_connections()

    # -- running bodies ------------------------------------------------------------
    @staticmethod
    def _transaction(db: Db, fn: Callable[[], T]) -> T:
        """``fn()`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT``, retried whole on BUSY."""
        def once() -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                value = fn()
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return value
        return _retry_busy(once)

    async def _write(self, body: Callable[[], Body[T]], *, idempotent: bool = False) -> T:
        """One write transaction, run whole in the writer's thread (one hop)."""
        if self._writer is None:
            raise RuntimeError("the store is not open")
        try:
            return await self._writer.run(
                lambda db: self._transaction(db, lambda: _drive(db, body())))
        except sqlite3.OperationalError as exc:
            raise self._unavailable(exc, "nothing was changed") from exc

    async def _read(self, body: Callable[[], Body[T]]) -> T:
        if self._reader is None:
            raise RuntimeError("the store is not open")
        try:
            return await self._reader.run(lambda db: _retry_busy(lambda: _drive(db, body())))
        except sqlite3.OperationalError as exc:
            raise self._unavailable(exc, "nothing was read or changed") from exc

    def _unavailable(self, exc: sqlite3.OperationalError, outcome: str
                     ) -> sqlite3.OperationalError:
        """A busy file past the retries, as an agentflow error that says so."""
        if not _is_busy(exc) or isinstance(exc, DatabaseLockedError):
            return exc
        return DatabaseLockedError(
            f"the database is unavailable: database is locked (another process held the "
            f"lock on {self.path!r} for over {_BUSY_RETRY_SECONDS:g} s of retries), so "
            f"{outcome}; try again when it is done")

    async def schema_version(self) -> int:
        if self._reader is None:
            raise RuntimeError("the store is not open")
        return await self._reader.run(
            lambda db: int(db.execute("PRAGMA user_version").fetchone()[0]))

    async def reclaim_space(self, *, max_pages: int | None = None, full: bool = False) -> int:
        """SQLite keeps the pages of deleted rows in the file for reuse; this hands them
        back: ``PRAGMA incremental_vacuum`` (at most ``max_pages``) on a file with
        ``auto_vacuum = INCREMENTAL``, or with ``full`` a whole ``VACUUM`` (which also
        switches an older file to incremental). Returns the pages freed."""
        if self._writer is None:
            raise RuntimeError("the store is not open")
        if self.path == ":memory:":
            return 0

        def reclaim(db: Db) -> int:
            before = int(db.execute("PRAGMA freelist_count").fetchone()[0])
            if full:
                db.execute("PRAGMA auto_vacuum = INCREMENTAL")
                _retry_busy(lambda: db.execute("VACUUM"))
            elif int(db.execute("PRAGMA auto_vacuum").fetchone()[0]) == 2:
                pages = "" if max_pages is None else f"({int(max_pages)})"
                # executescript steps the pragma to the end; execute().fetchall() stops
                # after its first page.
                _retry_busy(lambda: db.executescript(f"PRAGMA incremental_vacuum{pages};"))
            else:
                return 0
            if full or max_pages is None:
                # The WAL holds the moved pages until a checkpoint; the file shrinks
                # then. A bounded step leaves that to SQLite's own automatic
                # checkpoints: a checkpoint per batch would stall the writer.
                _retry_busy(lambda: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
            return before - int(db.execute("PRAGMA freelist_count").fetchone()[0])
        return await self._writer.run(reclaim)
