"""Storage backends behind one small interface (see `agentflow.store._base`)."""

from __future__ import annotations

import os

from agentflow.errors import InvalidArgumentError
from agentflow.store._base import (
    INSTANCE_KV_SCOPES,
    TRACE_KV_SCOPE,
    ChangeRow,
    CommitResult,
    EventRow,
    InstanceChange,
    InstanceRow,
    JournalRow,
    NewInstance,
    OperatorLogEntry,
    OperatorLogRow,
    PlanRow,
    RunCommit,
    RunFinish,
    ScheduleFire,
    ScheduleRow,
    ScopeQuota,
    ScopeQuotaRefused,
    Store,
)
from agentflow.store.sqlite import SQLiteStore

__all__ = [
    "INSTANCE_KV_SCOPES",
    "TRACE_KV_SCOPE",
    "ChangeRow",
    "CommitResult",
    "EventRow",
    "InstanceChange",
    "InstanceRow",
    "JournalRow",
    "NewInstance",
    "OperatorLogEntry",
    "OperatorLogRow",
    "PlanRow",
    "RunCommit",
    "RunFinish",
    "SQLiteStore",
    "ScheduleFire",
    "ScheduleRow",
    "ScopeQuota",
    "ScopeQuotaRefused",
    "Store",
    "default_url",
    "open_store",
]


def default_url() -> str:
    """``$AGENTFLOW_DB`` if set, else ``sqlite:///agentflow.db`` in the working directory."""
    return os.environ.get("AGENTFLOW_DB") or "sqlite:///agentflow.db"


def open_store(url: str | Store | None = None) -> Store:
    """Make (not yet open) the store a URL names.

    - ``memory://``: a private in-memory database, gone when closed;
    - ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``; a bare path
      ending in ``.db``/``.sqlite`` is taken as a SQLite file too;
    - ``postgresql://user:password@host:5432/dbname`` (or ``postgres://``): PostgreSQL,
      for workers on several machines (needs ``pip install "agentflow[postgres]"``).
    """
    if isinstance(url, Store):
        return url
    url = url or default_url()
    if url in ("memory://", "memory:", ":memory:"):
        return SQLiteStore(":memory:")
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if not path:
            raise InvalidArgumentError(f"database URL {url!r} names no file; "
                                       "write sqlite:///agentflow.db")
        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        try:  # imported here: `import agentflow` must not import psycopg
            from agentflow.store.postgres import PostgresStore
        except ImportError as exc:
            raise InvalidArgumentError(
                f"database URL {url[:url.find('://') + 3]}... needs the PostgreSQL driver: "
                f'pip install "agentflow[postgres]" ({exc})') from None
        return PostgresStore(url)
    if "://" not in url and url.endswith((".db", ".sqlite", ".sqlite3")):
        return SQLiteStore(url)
    raise InvalidArgumentError(f"database URL {url!r} is not understood: use memory://, "
                               "sqlite:///path/to/file.db or postgresql://host/dbname")
