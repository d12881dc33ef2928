"""The database as read and steer commands open it: as a client that never creates one,
never writes a schema into a file that holds none, and never hangs on a lock.

The SQLite store retries a busy database for a minute, which is right for a worker (a
commit must not be lost to a slow neighbour) and wrong for a person at a prompt. So a
steering command first takes the write lock itself, on a connection of its own, and
gives up after `LOCK_WAIT_SECONDS` with "database is locked" and nothing changed; its
real write follows at once. A lock taken in the moment between still makes that write
wait, and Ctrl-C still ends it (see ``_main``). Reads need no lock: the store opens a
current database and reads it under another process's write lock (WAL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from urllib.request import pathname2url

from agentflow._engine import Engine
from agentflow.cli._exits import DatabaseUnavailableError, is_database_error, is_locked
from agentflow.cli._worker import without_password
from agentflow.errors import InvalidArgumentError, NotFoundError
from agentflow.store import SQLiteStore, Store, open_store

__all__ = ["LOCK_WAIT_SECONDS", "client", "existing_store", "wait_for_write_lock"]

#: How long a command waits for another process's SQLite lock before it gives up.
LOCK_WAIT_SECONDS = 5.0
_LOCK_POLL_SECONDS = 0.05


def _connect(path: str, timeout: float) -> sqlite3.Connection:
    """A plain connection to an existing file (``mode=rw`` never creates one)."""
    return sqlite3.connect(f"file:{pathname2url(os.path.abspath(path))}?mode=rw", uri=True,
                           timeout=timeout, isolation_level=None)


def _holds_a_schema(path: str) -> bool:
    """Whether the SQLite file holds any schema at all (agentflow's, or the foreign one
    the store refuses by name). Reads only; waits for a lock like the store would."""
    with closing(_connect(path, LOCK_WAIT_SECONDS)) as db:
        (version,) = db.execute("PRAGMA user_version").fetchone()
        return bool(version) or db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone(
            ) is not None


def _check_file(path: str) -> None:
    """Refuse a path that holds no SQLite database to read (see `existing_store`)."""
    if not os.path.exists(path):
        raise NotFoundError(f"no agentflow database at {path!r}; pass --db or set "
                            "$AGENTFLOW_DB")
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"--db {path!r} is not a file; pass the database file")
    if os.path.getsize(path) == 0 or not _holds_a_schema(path):
        # Opening it would write agentflow's schema into it: a read must not.
        raise NotFoundError(f"{path!r} holds no agentflow database (it is empty); pass --db "
                            "or set $AGENTFLOW_DB (a worker or `agentflow demo` creates one)")


async def existing_store(url: str) -> Store:
    """The store a read or steer command opens; it must already hold a database.

    Raises:
        NotFoundError: no file at that path, or one that holds no database (empty).
        InvalidArgumentError: the path is a folder, or the URL is not understood.
        DatabaseUnavailableError: the file cannot be read (locked, or not SQLite).
    """
    store = open_store(url)
    if isinstance(store, SQLiteStore) and store.path != ":memory:":
        try:
            # In a thread: a lock held in rollback-journal mode makes the read wait, and
            # Ctrl-C must still be heard meanwhile.
            await asyncio.to_thread(_check_file, store.path)
        except sqlite3.DatabaseError as exc:
            raise _unavailable(store, exc) from None
    return store


async def wait_for_write_lock(store: Store) -> None:
    """Take and release the SQLite write lock, or fail after `LOCK_WAIT_SECONDS`."""
    if not isinstance(store, SQLiteStore) or store.path == ":memory:":
        return
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    with closing(_connect(store.path, 0)) as db:
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("ROLLBACK")
                return
            except sqlite3.OperationalError as exc:
                if not is_locked(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise DatabaseUnavailableError(
                        f"database is locked: another process has held the write lock on "
                        f"{store.path!r} for over {LOCK_WAIT_SECONDS:g}s, so nothing was "
                        f"changed; try again when it is done") from None
            await asyncio.sleep(_LOCK_POLL_SECONDS)  # a wait Ctrl-C can cancel


def _unavailable(store: Store, exc: BaseException) -> DatabaseUnavailableError:
    where = store.path if isinstance(store, SQLiteStore) else without_password(store.url)
    if is_locked(exc):
        return DatabaseUnavailableError(
            f"database is locked: another process holds the lock on {where!r}, so nothing "
            f"was changed; try again when it is done ({exc})")
    return DatabaseUnavailableError(f"cannot use the database {where!r}: {exc}")


@asynccontextmanager
async def client(args: argparse.Namespace, *, writes: bool = False
                 ) -> AsyncIterator[Engine]:
    """An engine that runs nothing (another process's worker does), on ``args.db``.

    Args:
        args: the parsed command line; ``args.db`` is the database URL.
        writes: the command changes something: wait for the write lock first.

    Raises:
        DatabaseUnavailableError: the database is locked, unreadable or unreachable.
    """
    store = await existing_store(args.db)
    try:
        if writes:
            await wait_for_write_lock(store)
        async with Engine(store, run_scheduler=False) as engine:
            yield engine
    except Exception as exc:
        if is_database_error(exc):
            raise _unavailable(store, exc) from None
        raise
