"""The store interface: everything the engine asks of a database, and nothing more.

A store keeps three things: instances (one row each, with status, lease and fencing
token), the journal (one row per step position of an instance) and events (buffered per
instance and type until a wait consumes them). All times are epoch seconds (floats);
all values are JSON text, encoded and decoded by the engine.

Contract a backend must keep (the contract tests in ``tests/engine/test_store_contract.py``
run against every backend):

- **Claims.** `claim_due_instances` hands each due, unleased instance to exactly one
  caller, and bumps the instance's fencing token (``fence``) with every claim.
- **Fencing.** `commit` applies a `RunCommit` only while the instance's ``fence`` still
  equals the one the runner claimed with; otherwise it writes nothing for that commit
  and reports ``ok=False``, so a holder whose lease expired can never write over the new
  holder's work.
- **Events are consumed once.** A commit that consumes an event another wait consumed
  already (or that a restart dropped) writes nothing and reports the event in
  ``taken``; each event completes at most one wait, whichever process commits first.
- **Group commit.** `commit` may put many runners' commits into one durable
  transaction, but returns to a runner only once its own commit is durable.
- **Atomic control.** `transition` reads an instance and applies the change the engine
  computes from it in one transaction; so do `create_instances` and `add_event`.
- **Change feed.** `read_changes` returns what changed after a cursor, numbered in
  commit order (triggers write it, so every writer feeds it); see `ChangeRow`.
- **Wake-ups (optional).** `wait_for_change` returns when another process may have
  made work due (new instances, an event, a timer moved, claims handed back), or after
  its timeout. A store that cannot hear other processes (SQLite) just sleeps, and the
  engine's poll is how it sees their work; one that can (PostgreSQL's LISTEN/NOTIFY)
  sets `pushes_changes`, and the engine then polls only for leases that expired.
- **Leases on one clock.** Given ``lease_seconds``, claims and renewals read the time
  from the database (the server's clock on PostgreSQL), never from the caller, and a
  renewal reports which leases it kept.

(Over 400 lines, on purpose: this is the whole contract, the rows it speaks of and the
abstract methods with their rules, read in one place by whoever writes a backend; the
SQL that keeps it is in ``_rules.py``.)
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The key-value scope of instances' trace contexts (`agentflow.otel`): its keys are
#: instance ids.
TRACE_KV_SCOPE = "#otel"
#: Key-value scopes whose keys are instance ids: a record there is deleted with its
#: instance (`Store.delete_instances`).
INSTANCE_KV_SCOPES: tuple[str, ...] = (TRACE_KV_SCOPE,)


@dataclass(slots=True)
class InstanceRow:
    id: str
    workflow: str
    status: str
    payload: str
    created_at: float
    updated_at: float
    # Once finished: the run's output or its error record (JSON).
    output: str | None = None
    error: str | None = None
    # What a waiting instance waits for (JSON), and when the scheduler should run it
    # next (None: nothing makes it due).
    waiting_on: str | None = None
    due_at: float | None = None
    # The claim: who holds it and until when, and the fencing token every claim bumps.
    lease_owner: str | None = None
    lease_until: float | None = None
    fence: int = 0
    scope: str | None = None
    # Since when its run has waited for a worker slot in the process holding the claim
    # (recorded there with `Store.mark_slot_waits`); None when not waiting.
    slot_wait_since: float | None = None


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One entry of the change feed: something a reader of an instance would see moved.

    ``kind``: ``created``, ``status`` (its status, wait, output, error or params
    changed), ``step`` (a journal entry was written or changed; ``step`` names it) or
    ``deleted``. ``status`` is the instance's (or, for ``step``, the step's) new status.
    ``at`` is wall time (epoch seconds) when the change was written.
    """

    seq: int
    instance_id: str
    scope: str | None
    workflow: str
    kind: str
    status: str | None
    step: str | None
    at: float


@dataclass(frozen=True, slots=True)
class NewInstance:
    id: str
    workflow: str
    payload: str
    created_at: float
    scope: str | None = None  # who it belongs to (an agent); listings can filter on it


@dataclass(frozen=True, slots=True)
class ScopeQuota:
    """How many instances one scope may hold, checked by `Store.create_instances` in
    its own transaction (so two processes starting instances at once cannot both pass
    the check): at most ``max_active`` of ``active_statuses`` and ``max_total`` in all,
    counting the new ones."""

    scope: str
    max_active: int
    max_total: int
    active_statuses: tuple[str, ...]


class ScopeQuotaRefused(Exception):
    """`Store.create_instances` wrote nothing: the scope would hold ``count`` instances
    against ``limit`` (``which``: ``active`` or ``total``)."""

    def __init__(self, which: str, count: int, limit: int) -> None:
        super().__init__(f"{which} instances: {count} > {limit}")
        self.which, self.count, self.limit = which, count, limit


@dataclass(slots=True)
class JournalRow:
    """One step position. ``status``: ok | error | retrying | waiting."""

    seq: int
    name: str
    n: int
    kind: str
    status: str
    attempts: int
    started_at: float
    # The outcome (JSON), when the position finished, and when a sleep, a wait's
    # deadline or a retry falls due.
    result: str | None = None
    error: str | None = None
    finished_at: float | None = None
    wake_at: float | None = None
    detail: str | None = None  # JSON: {"logs": [...], "attempts": [...]} (see _step.py)


@dataclass(frozen=True, slots=True)
class PlanRow:
    scope: str
    name: str
    version: str
    source: str
    created_at: float
    created_by: str
    current: bool = False


@dataclass(frozen=True, slots=True)
class OperatorLogEntry:
    """An operator-log entry to write (see `OperatorLogRow`, which is one as stored)."""

    kind: str
    subject: str
    value: str
    at: float
    actor: str


@dataclass(frozen=True, slots=True)
class OperatorLogRow:
    """One decision an operator made: ``kind`` ``policy`` (``subject`` a setting) or
    ``restart`` (``subject`` an instance id); ``value`` is JSON text."""

    id: int
    kind: str
    subject: str
    value: str
    at: float
    actor: str


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    instance_id: str
    type: str
    payload: str
    created_at: float
    #: The journal position of the wait it is addressed to (None: any wait of its type).
    wait_seq: int | None = None


@dataclass(frozen=True, slots=True)
class RunFinish:
    """How a run's activation ends: a new status and what goes with it.

    ``wake_types``: for a run that suspends on event waits, the event types it waits
    for. If one of them is already buffered when the commit lands (it was sent while
    the run was deciding to wait), the store makes the instance due at once instead.
    """

    status: str
    at: float
    due_at: float | None = None
    output: str | None = None
    error: str | None = None
    waiting_on: str | None = None
    wake_types: tuple[str, ...] = ()
    #: The journal positions of the event waits: an event addressed to one of them
    #: (``add_event(wait_seq=...)``) wakes the run too.
    wake_seqs: tuple[int, ...] = ()


@dataclass(slots=True)
class RunCommit:
    """What one runner makes durable at once, under its fencing token."""

    instance_id: str
    fence: int
    steps: list[JournalRow] = field(default_factory=list)
    consumed_events: list[tuple[int, int]] = field(default_factory=list)  # (event id, seq)
    finish: RunFinish | None = None


@dataclass(frozen=True, slots=True)
class CommitResult:
    ok: bool  # False: nothing of this commit was written (see `taken` for why)
    status: str | None  # the instance's status after the commit (None: it no longer exists)
    #: With ``ok=False``: the events this commit meant to consume that another wait
    #: consumed first (or that are gone). Empty: the fence moved on.
    taken: tuple[int, ...] = ()


@dataclass(slots=True)
class InstanceChange:
    """A change to one instance, computed by the engine from its current row.

    Fields left as `KEEP` are not touched. ``bump_fence`` invalidates the current
    holder's claim; ``clear_lease`` hands the instance back; ``delete_steps_from``
    drops journal rows at and after that position, with the events a dropped wait had
    consumed and every event not consumed yet (they were sent to the run being
    replaced; a restart must not hand an old approval to the new run). ``log`` is an
    operator-log entry written in the same transaction as the change (a restart and
    the record of who made it: both or neither).
    """

    at: float
    status: str | None = None
    due_at: Any = ...
    output: Any = ...
    error: Any = ...
    waiting_on: Any = ...
    payload: str | None = None
    bump_fence: bool = False
    clear_lease: bool = False
    delete_steps_from: int | None = None
    log: OperatorLogEntry | None = None


@dataclass(slots=True)
class ScheduleRow:
    """A schedule as stored. ``spec`` is JSON text the engine owns (when and what to
    fire); the other columns are the state a fire moves on. ``scope`` is the agent
    (``""`` for a trusted workflow's schedule); ``sid`` is a random id, part of every
    fired instance's id so a schedule deleted and made again never collides."""

    scope: str
    name: str
    sid: str
    workflow: str
    spec: str
    paused: bool
    next_fire_at: float | None
    last_fire_at: float | None
    last_instance_id: str | None
    buffered_fire_at: float | None
    revision: int
    created_at: float
    updated_at: float
    #: Fires it could not start (the agent's instance quota, its plan gone), the last
    #: reason and when (workflow time).
    skipped_fires: int = 0
    last_error: str | None = None
    last_error_at: float | None = None


@dataclass(slots=True)
class ScheduleFire:
    """What one pass over a schedule records, in one transaction, if and only if the
    schedule's ``revision`` is still the one read: its new state and the instances its
    fires create (ids derived from the schedule and the fire time; one that exists
    already is skipped)."""

    scope: str
    name: str
    revision: int
    next_fire_at: float | None
    last_fire_at: float | None
    last_instance_id: str | None
    buffered_fire_at: float | None
    instances: list[NewInstance] = field(default_factory=list)
    at: float = 0.0
    #: Fires of this pass that could not start, and why the last of them could not:
    #: added to the schedule's count and kept as its last error.
    skipped: int = 0
    error: str | None = None


class Store(abc.ABC):
    """Backend-neutral storage for the engine. See the module docstring for the contract."""

    url: str
    #: True if `wait_for_change` hears changes made by other processes.
    pushes_changes: bool = False

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema to the current version (migrating if needed)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush pending commits and disconnect."""

    @abc.abstractmethod
    async def schema_version(self) -> int: ...

    # -- instances -----------------------------------------------------------------
    @abc.abstractmethod
    async def create_instances(self, rows: Sequence[NewInstance],
                               quota: ScopeQuota | None = None) -> list[str]:
        """Insert new instances as ``queued`` and due at ``created_at``, in one transaction.
        Ids that exist already are skipped; returns the ids that were created.

        With ``quota``, the transaction first counts the scope's instances and raises
        `ScopeQuotaRefused` (writing nothing) if the new ones would exceed it."""

    @abc.abstractmethod
    async def get_instance(self, instance_id: str) -> InstanceRow | None: ...

    @abc.abstractmethod
    async def list_instances(self, *, workflows: Sequence[str] | None = None,
                             statuses: Sequence[str] | None = None,
                             scopes: Sequence[str] | None = None, limit: int = 100,
                             offset: int = 0, before: tuple[float, str] | None = None,
                             plans: Sequence[str] | None = None) -> list[InstanceRow]:
        """Instances, newest first (``created_at`` descending, then ``id``), filtered by
        workflow names, statuses, scopes and agent plan names.

        ``before`` pages by key rather than by offset: pass the ``(created_at, id)`` of
        the last row of the previous page, and the page after it comes back at the
        same cost however deep it is (100,000 instances down as on the first page)."""

    @abc.abstractmethod
    async def transition(self, instance_id: str,
                         decide: Callable[[InstanceRow], InstanceChange | None]
                         ) -> InstanceRow | None:
        """Read the instance, call ``decide(row)`` and apply its change, atomically.

        ``decide`` may raise to abort without writing. Returns the row as changed, or
        None if the instance does not exist.
        """

    # -- scheduling ----------------------------------------------------------------
    @abc.abstractmethod
    async def claim_due_instances(self, *, owner: str, workflows: Sequence[str], now: float,
                                  lease_now: float | None = None,
                                  lease_until: float | None = None, limit: int,
                                  lease_seconds: float | None = None) -> list[InstanceRow]:
        """Claim up to ``limit`` instances of these workflows that are due at ``now``
        (workflow time) and not leased at ``lease_now`` (wall time). Each claimed row
        comes back with status ``running`` (a ``waiting_for_pause`` one is paused
        instead and not returned), the new lease and a bumped ``fence``.

        Leases are judged on one clock: give ``lease_seconds`` (and no ``lease_now`` or
        ``lease_until``) and the store reads the time from the database's own clock
        (the server's, on PostgreSQL), so that workers whose clocks disagree still
        agree on when a lease ran out. Explicit times are for tests."""

    @abc.abstractmethod
    async def next_due_at(self, workflows: Sequence[str], *,
                          lease_now: float | None = None) -> float | None:
        """The earliest due time among instances of these workflows not leased at
        ``lease_now`` (default: the database's clock)."""

    async def wait_for_change(self, timeout: float) -> None:
        """Return when another process may have made work due, or after ``timeout``
        seconds, whichever is first. One caller (the engine's scheduler) waits at a time.

        This default cannot tell, so it sleeps the whole timeout.
        """
        await asyncio.sleep(timeout)

    @abc.abstractmethod
    async def renew_leases(self, *, owner: str, instance_ids: Sequence[str],
                           lease_until: float | None = None,
                           lease_seconds: float | None = None) -> list[str]:
        """Extend this owner's leases (to ``lease_until``, or ``lease_seconds`` from now
        on the database's clock). Returns the ids renewed: any other was lost (taken
        over, terminated, restarted) and its run must stop."""

    @abc.abstractmethod
    async def release_leases(self, *, owner: str, instance_ids: Sequence[str],
                             now: float) -> None:
        """Hand these instances back (running ones become queued and due now) and bump
        their fence, so that nothing this owner still has in flight can land."""

    # -- journal and events --------------------------------------------------------
    @abc.abstractmethod
    async def load_journal(self, instance_id: str) -> list[JournalRow]:
        """The journal of an instance, ordered by position."""

    @abc.abstractmethod
    async def commit(self, commit: RunCommit) -> CommitResult:
        """Make a runner's journal rows, consumed events and finish durable, fenced."""

    @abc.abstractmethod
    async def add_event(self, instance_id: str, type: str, payload: str, now: float,
                        decide: Callable[[InstanceRow], InstanceChange | None],
                        wait_seq: Callable[[InstanceRow], int | None] | None = None) -> bool:
        """Buffer an event for an instance and apply ``decide(row)`` (which may wake it
        or raise to refuse), atomically. Returns False if the instance does not exist.

        ``wait_seq(row)``, read in the same transaction, addresses the event to the wait
        at that journal position: only that wait consumes it (None: any wait of its
        type, first come)."""

    @abc.abstractmethod
    async def pending_events(self, instance_id: str, type: str, *, exclude: Sequence[int] = (),
                             limit: int = 1, wait_seq: int | None = None) -> list[EventRow]:
        """The oldest events of that type not yet consumed, FIFO, that the wait at journal
        position ``wait_seq`` may take: those addressed to no wait, and those addressed
        to it (without ``wait_seq``: every one, whatever it is addressed to)."""

    # -- plan versions and per-scope key-value (the agent layer) --------------------
    @abc.abstractmethod
    async def put_plan_version(self, plan: PlanRow) -> PlanRow:
        """Store an immutable plan version (kept as is if that version exists) and make
        it the plan's current version. Returns the stored row."""

    @abc.abstractmethod
    async def get_plan_version(self, scope: str, name: str, version: str | None = None
                               ) -> PlanRow | None:
        """A version of a plan, by default its current one."""

    @abc.abstractmethod
    async def list_plans(self, scope: str | None) -> list[PlanRow]:
        """The current version of every plan in a scope (None: every scope), by name."""

    @abc.abstractmethod
    async def list_plan_versions(self, scope: str, name: str) -> list[PlanRow]:
        """Every version of one plan, oldest first."""

    # -- the change feed ------------------------------------------------------------
    async def read_changes(self, after: int, limit: int = 500) -> list[ChangeRow]:
        """Up to ``limit`` changes numbered above ``after``, in order.

        Numbers increase in commit order and a number, once read, never has a smaller
        one appear after it: a reader that keeps the last number it saw (a cursor)
        misses nothing and sees nothing twice, across processes.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no change feed")

    async def last_change(self) -> int:
        """The number of the newest change (0 if none): a cursor meaning "from now"."""
        raise NotImplementedError(f"{type(self).__name__} keeps no change feed")

    async def trim_changes(self, before: float) -> int:
        """Delete changes written before ``before`` (epoch seconds); returns how many.
        The newest change is always kept, so numbering carries on from it; a cursor
        older than what is kept resumes at the oldest change left."""
        raise NotImplementedError(f"{type(self).__name__} keeps no change feed")

    @abc.abstractmethod
    async def kv_get(self, scope: str, key: str) -> str | None: ...

    @abc.abstractmethod
    async def kv_set(self, scope: str, key: str, value: str, now: float) -> None: ...

    @abc.abstractmethod
    async def kv_add(self, scope: str, key: str, value: str, now: float) -> bool:
        """Write ``key`` only if it is absent (one statement: of any number of writers,
        across processes, exactly one adds it). Returns whether this call added it."""

    @abc.abstractmethod
    async def kv_set_within(self, scope: str, key: str, value: str, now: float, *,
                            max_keys: int, max_bytes: int) -> tuple[int, int] | None:
        """`kv_set`, unless the scope would then hold more than ``max_keys`` keys or
        ``max_bytes`` bytes (UTF-8 of keys and values), checked in the write's own
        transaction. Returns None when written, else the ``(keys, bytes)`` the scope
        would have held (nothing written)."""

    @abc.abstractmethod
    async def kv_usage(self, scope: str) -> tuple[int, int]:
        """The keys and bytes (UTF-8 of keys and values) a scope holds."""

    @abc.abstractmethod
    async def mark_slot_waits(self, owner: str, waiting: Mapping[str, float],
                              granted: Sequence[str]) -> None:
        """Record which instances held by ``owner`` wait for a worker slot (id to since
        when, epoch seconds), and which stopped waiting; instances ``owner`` no longer
        holds are left alone. A claim clears the record."""

    async def instance_marks(self, instance_ids: Sequence[str]
                             ) -> dict[str, tuple[Any, ...]]:
        """``(status, due_at, fence, updated_at)`` of each of these instances (missing
        ones are left out): what a waiter compares to see that an instance moved.
        Stores answer in one query per chunk; this default reads row by row."""
        found: dict[str, tuple[Any, ...]] = {}
        for instance_id in instance_ids:
            row = await self.get_instance(instance_id)
            if row is not None:
                found[instance_id] = (row.status, row.due_at, row.fence, row.updated_at)
        return found

    @abc.abstractmethod
    async def get_fences(self, instance_ids: Sequence[str]) -> dict[str, int]:
        """The current fence of each of these instances (missing ones are left out):
        a run whose fence moved (terminated, restarted, taken over) is moot."""

    @abc.abstractmethod
    async def count_instances(self, *, scope: str, statuses: Sequence[str] | None = None
                              ) -> int:
        """How many instances a scope has (of these statuses; None: all)."""

    @abc.abstractmethod
    async def kv_delete(self, scope: str, key: str) -> bool: ...

    @abc.abstractmethod
    async def kv_list(self, scope: str, prefix: str = "", limit: int = 1000) -> list[str]: ...

    # -- the operator's log (policy, operator restarts) -----------------------------
    @abc.abstractmethod
    async def append_operator_log(self, kind: str, subject: str, value: str, *, at: float,
                                  actor: str) -> None:
        """Append one operator decision (never updates or deletes)."""

    @abc.abstractmethod
    async def read_operator_log(self, kind: str, subject: str | None = None
                                ) -> list[OperatorLogRow]:
        """The decisions of one kind (and subject), oldest first."""
    # -- schedules (see agentflow._schedules) -----------------------------------------
    @abc.abstractmethod
    async def put_schedule(self, row: ScheduleRow, *, replace: bool) -> bool:
        """Insert a schedule; an existing ``(scope, name)`` is replaced only if
        ``replace`` (keeping nothing of the old one). Returns whether it was written."""

    @abc.abstractmethod
    async def get_schedule(self, scope: str, name: str) -> ScheduleRow | None: ...

    @abc.abstractmethod
    async def list_schedules(self, scope: str | None) -> list[ScheduleRow]:
        """Every schedule of a scope (None: of every scope), by scope and name."""

    @abc.abstractmethod
    async def delete_schedule(self, scope: str, name: str) -> bool: ...

    @abc.abstractmethod
    async def set_schedule_paused(self, scope: str, name: str, paused: bool, *, now: float,
                                  next_fire_at: float | None) -> bool:
        """Pause or resume (resuming sets the next fire time); bumps the revision."""

    @abc.abstractmethod
    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRow]:
        """Unpaused schedules whose next fire time has come, or that hold a buffered
        fire (it may start once the run before it finishes)."""

    @abc.abstractmethod
    async def next_schedule_at(self) -> float | None:
        """The earliest next fire time of any unpaused schedule."""

    @abc.abstractmethod
    async def record_fire(self, fire: ScheduleFire) -> list[str] | None:
        """Apply ``fire`` if the schedule's revision is still ``fire.revision``: create its
        instances (skipping ids that exist) and store its state, atomically. Returns the
        ids created, or None if another process moved the schedule on first."""

    # -- workers ----------------------------------------------------------------------
    @abc.abstractmethod
    async def worker_seen(self, owner: str, *, now: float, alive_until: float) -> None:
        """Record that a process running a scheduler is alive until ``alive_until``."""

    @abc.abstractmethod
    async def worker_gone(self, owner: str) -> None: ...

    @abc.abstractmethod
    async def live_workers(self, now: float) -> list[str]:
        """Owners of schedulers that said they are alive at ``now`` (wall time)."""

    # -- retention ----------------------------------------------------------------------
    @abc.abstractmethod
    async def finished_instance_ids(self, *, statuses: Sequence[str],
                                    finished_before: float | None,
                                    scopes: Sequence[str] | None, unscoped: bool = False,
                                    exclude_scopes: Sequence[str] = (),
                                    limit: int) -> list[str]:
        """Ids of instances in these (terminal) statuses last updated before
        ``finished_before``, oldest first; ``scopes`` picks agents (None: any),
        ``unscoped`` picks trusted workflows' instances only, ``exclude_scopes``
        leaves some agents out."""

    @abc.abstractmethod
    async def delete_instances(self, instance_ids: Sequence[str], *,
                               statuses: Sequence[str] | None = None) -> list[str]:
        """Delete instances with their journal and events in one transaction; with
        ``statuses``, only those still in one of them. Returns the ids deleted."""

    @abc.abstractmethod
    async def reclaim_space(self, *, max_pages: int | None = None, full: bool = False) -> int:
        """Give freed space back to the file system where the backend does it on
        demand (SQLite's incremental vacuum, at most ``max_pages`` pages at a time);
        ``full`` rewrites the whole database once (SQLite's ``VACUUM``, which also turns
        incremental vacuum on for a file made before it was the default). Returns the
        pages freed, or 0 where the backend reclaims space by itself."""

    @abc.abstractmethod
    async def get_retention(self) -> dict[str, float]:
        """Retention policies: scope (``""`` is the default) to seconds kept."""

    @abc.abstractmethod
    async def set_retention(self, scope: str, keep_seconds: float | None, now: float) -> None:
        """Set (or with None remove) how long a scope's finished instances are kept."""
