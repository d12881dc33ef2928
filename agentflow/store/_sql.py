"""The store's rules, written once in SQL that SQLite and PostgreSQL both accept.

Every operation of the store contract (claims and leases, fencing, pause, the group
commit, events, plans, kv) is a *transaction body* here: a generator that yields the
statements to run and receives their rows, with no I/O of its own::

    def get_instance(instance_id):
        rows = yield Q("SELECT ... FROM instances WHERE id = ?", (instance_id,))
        return InstanceRow(*rows[0]) if rows else None

This module is their vocabulary; the bodies are in ``_rules.py`` and `SQLStore`
(``_sqlstore.py``) is the `Store` made of them. Each backend only *drives* bodies:
``sqlite.py`` runs one whole body in its writer thread in one hop (sqlite3 is
synchronous), ``postgres.py`` awaits each statement on a psycopg connection in pipeline
mode. So a lease, fence or pause rule exists once and cannot drift between the
backends; what truly differs stays in the backend modules and in `Dialect`
(placeholders, ``FOR UPDATE [SKIP LOCKED]``, the due-index hint, ``max``/``greatest``,
LISTEN/NOTIFY, connections, retries, migrations).

Tried first: sharing plain async methods over an async connection facade. SQLite then
pays one thread hop per statement (four per step, ~2x the latency measured in
``bench/README.md``); a body that yields statements keeps SQLite at one hop per
transaction and PostgreSQL at its pipelined round trips.

Statements use ``?`` placeholders (the PostgreSQL driver rewrites them), no literal
``?`` or ``%``, and pass every time as a float (psycopg types a parameter from its
Python value; a double precision column compared with an integer parameter works, but
arrays and CASE branches would not).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["INSTANCE_COLUMNS", "MAX_VARS", "NOTIFY", "STEP_COLUMNS", "Body", "Dialect", "Do",
           "Done", "Many", "Op", "Q", "advance", "chunks", "lease_times", "marks"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Q:
    """A statement whose rows the body reads (a SELECT, or a write with RETURNING)."""

    sql: str
    params: Sequence[Any] = ()


@dataclass(frozen=True, slots=True)
class Do:
    """A statement run for its effect; the body receives None."""

    sql: str
    params: Sequence[Any] = ()


@dataclass(frozen=True, slots=True)
class Many:
    """One statement run once per parameter row (``executemany``)."""

    sql: str
    rows: Sequence[Sequence[Any]]


class _Notify:
    """Tell other processes that work may have become due (PostgreSQL's NOTIFY, sent
    when the transaction commits; a no-op where nobody can listen)."""

    def __repr__(self) -> str:
        return "NOTIFY"


NOTIFY = _Notify()

#: What a body may yield. A tuple of `Q` is sent at once (one round trip in pipeline
#: mode) and answered with a list of row lists, in order.
Op = Q | Do | Many | _Notify | tuple[Q, ...]
Body = Generator[Op, Any, T]


@dataclass(frozen=True, slots=True)
class Done:
    """A body that has returned: its result."""

    value: Any


def advance(body: Body[Any], answer: Any) -> Op | Done:
    """Hand ``answer`` to the body and take its next statement, or its result.

    A driver's whole loop::

        answer = None
        while not isinstance(op := advance(body, answer), Done):
            answer = run(op)
        return op.value
    """
    try:
        return body.send(answer)
    except StopIteration as stop:
        return Done(stop.value)


@dataclass(frozen=True, slots=True)
class Dialect:
    """The few words of SQL the two backends spell differently."""

    #: index hint for the scheduler's due-time reads (SQLite's planner needs it)
    due_index: str = ""
    #: row locks inside a transaction (SQLite's BEGIN IMMEDIATE locks the whole file)
    for_update: str = ""
    #: claim rows that no concurrent claimer holds, skipping the others
    skip_locked: str = ""
    #: the larger of two values
    greatest: str = "max"
    #: plan versions in the order they were submitted
    submitted_order: str = "v.rowid"
    #: an agent plan's name, read from an instance's payload envelope
    plan_of_payload: str = "json_extract(payload, '$.__dispatcher_metadata.plan')"
    #: the size in bytes (UTF-8) of a text column
    octets: str = "length(CAST({} AS BLOB))"
    #: a statement that serializes writers of one key until the transaction ends
    #: (SQLite's BEGIN IMMEDIATE already serializes every writer)
    scope_lock: str = ""
    #: the database's clock as epoch seconds: leases are judged on it alone
    db_now: str = "((julianday('now') - 2440587.5) * 86400.0)"


MAX_VARS = 500  # bound on placeholders per statement, well under SQLite's limit

INSTANCE_COLUMNS = ("id, workflow, status, payload, created_at, updated_at, output, error, "
                    "waiting_on, due_at, lease_owner, lease_until, fence, scope, slot_wait_since")
STEP_COLUMNS = ("seq, name, n, kind, status, attempts, started_at, result, error, "
                "finished_at, wake_at, detail")


def chunks(items: Sequence[Any], size: int = MAX_VARS) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


def lease_times(d: Dialect, lease_now: float | None, lease_until: float | None,
                lease_seconds: float | None) -> tuple[str, str, list[float]]:
    """SQL for "now" and "the lease's end", with their parameters: explicit times, or
    the database's clock (then every process judges leases on that one clock)."""
    if lease_now is not None and lease_until is not None:
        return "?", "?", [float(lease_now), float(lease_until)]
    if lease_seconds is None:
        raise ValueError("give lease_seconds, or both lease_now and lease_until")
    return d.db_now, f"({d.db_now} + ?)", [float(lease_seconds)]
