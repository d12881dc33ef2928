"""Handles users hold: `WorkflowBinding` (create, get) and `Instance` (status, controls).

(Over 400 lines, on purpose: every control is a transition checked and written in
one store transaction, and the transitions (pause, resume, terminate, restart, send)
share their rules for what each status allows; they read best side by side.)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentflow._durations import parse_duration, to_datetime
from agentflow._limits import check_event_type, check_instance_id, encode_value
from agentflow.errors import (
    InstanceNotFoundError,
    InvalidArgumentError,
    InvalidStateError,
)
from agentflow.models import (
    TERMINAL_STATUSES,
    AttemptRecord,
    InstanceStatus,
    StepRecord,
    WaitingOn,
)
from agentflow.policy import OperatorAction, default_actor, restart_entry, restarts
from agentflow.store import InstanceChange, InstanceRow, JournalRow, NewInstance

if TYPE_CHECKING:
    from agentflow._engine import Engine

__all__ = ["Instance", "OpenWait", "WorkflowBinding", "instance_status", "open_waits",
           "step_record", "wait_ref"]

RESTING_STATUSES = TERMINAL_STATUSES | {"paused"}


def instance_status(row: InstanceRow) -> InstanceStatus:
    waits: list[WaitingOn] = []
    if row.status == "waiting" and row.waiting_on:
        w = json.loads(row.waiting_on)
        # "waits" lists every wait (since exactly-once events); older rows hold one.
        waits = sorted((_waiting_on(x) for x in w.get("waits") or [w]),
                       key=lambda x: x.until)
    status, note = row.status, None
    if (status in ("running", "waiting_for_pause") and row.lease_until is not None
            and row.lease_until < time.time()):
        # Its holder stopped renewing the claim (it crashed, froze or lost the
        # database): nobody runs it now. `running` would be a lie.
        note = (f"the worker that ran it ({row.lease_owner}) stopped renewing its claim "
                f"at {to_datetime(row.lease_until).isoformat(timespec='seconds')}; the next "
                "worker to look takes it over")
        status = "queued" if status == "running" else "paused"
    return InstanceStatus(
        id=row.id, workflow=row.workflow, status=status,  # type: ignore[arg-type]
        output=json.loads(row.output) if row.output is not None else None,
        error=json.loads(row.error) if row.error is not None else None,
        waiting_on=waits[0] if waits else None, waits=waits,
        created_at=to_datetime(row.created_at), updated_at=to_datetime(row.updated_at),
        note=note)


def _waiting_on(w: dict[str, Any]) -> WaitingOn:
    return WaitingOn(kind=w["kind"], step=w["step"], until=to_datetime(w["until"]),
                     type=w.get("type"), attempt=w.get("attempt"), note=w.get("note"))


@dataclass(frozen=True)
class OpenWait:
    """One event wait an instance is parked on now (a ``gather`` parks on several).

    Attributes:
        wait: the wait, as `InstanceStatus.waits` lists it.
        ref: names this very wait of this run (see `wait_ref`).
        seq: its journal position, which an event addressed to it carries (None for a
            wait parked by an older version, which cannot be addressed).
    """

    wait: WaitingOn
    ref: str
    seq: int | None


def open_waits(row: InstanceRow) -> list[OpenWait]:
    """Every event wait ``row`` is parked on, earliest deadline first, each with its
    reference.

    The fence moves whenever the instance is claimed, woken, paused, restarted or
    terminated, so a reference names this very wait: an answer given to an older one
    (same step, same second, another run) no longer matches it.
    """
    if row.status != "waiting" or not row.waiting_on:
        return []
    w = json.loads(row.waiting_on)
    found = []
    for raw in sorted(w.get("waits") or [w], key=lambda x: x["until"]):
        wait = _waiting_on(raw)
        if wait.kind != "event" or not wait.type:
            continue
        seq = raw.get("seq")
        text = (f"{row.id}\0{row.fence}\0{wait.step}\0{wait.type}\0{wait.until.isoformat()}"
                + (f"\0{seq}" if seq is not None else ""))
        found.append(OpenWait(wait, hashlib.sha256(text.encode()).hexdigest()[:12],
                              seq if isinstance(seq, int) else None))
    return found


def wait_ref(row: InstanceRow) -> str | None:
    """A reference to the (first) event wait ``row`` is in, or None if it waits for no
    event; `open_waits` gives every wait's."""
    w = instance_status(row).waiting_on
    if w is None or w.kind != "event":
        return None
    return next((o.ref for o in open_waits(row) if o.wait == w), None)


class _StaleWait(Exception):
    """The instance no longer waits where the sender saw it wait."""


def step_record(row: JournalRow) -> StepRecord:
    detail: dict[str, Any] = {}
    if row.detail:
        try:
            detail = json.loads(row.detail)
        except ValueError:
            detail = {}
    attempts = [AttemptRecord(
        attempt=a.get("attempt", 0), started_at=to_datetime(a.get("started_at", 0.0)),
        ended_at=to_datetime(a.get("ended_at", 0.0)), error=a.get("error"),
        logs=a.get("logs") or []) for a in detail.get("attempts", []) if isinstance(a, dict)]
    return StepRecord(
        logs=detail.get("logs") or [], attempt_history=attempts,
        seq=row.seq, name=row.name, n=row.n, kind=row.kind,  # type: ignore[arg-type]
        status=row.status, attempts=row.attempts,  # type: ignore[arg-type]
        result=json.loads(row.result) if row.result is not None else None,
        error=json.loads(row.error) if row.error is not None else None,
        started_at=to_datetime(row.started_at),
        finished_at=to_datetime(row.finished_at) if row.finished_at is not None else None,
        wake_at=to_datetime(row.wake_at) if row.wake_at is not None else None)


class Instance:
    """A handle to one instance. Cheap to make; every method reads or writes the store."""

    def __init__(self, engine: Engine, instance_id: str, workflow: str) -> None:
        self._engine = engine
        self.id = instance_id
        self.workflow = workflow

    def __repr__(self) -> str:
        return f"Instance(id={self.id!r}, workflow={self.workflow!r})"

    async def _row(self) -> InstanceRow:
        row = await self._engine.store.get_instance(self.id)
        if row is None:
            raise InstanceNotFoundError(f"no instance with id {self.id!r}")
        return row

    async def status(self) -> InstanceStatus:
        """The instance's status, output or error, and what it waits on."""
        return instance_status(await self._row())

    async def history(self) -> list[StepRecord]:
        """The journal: every step the run reached, in order, with attempts and times."""
        await self._row()
        return [step_record(r) for r in await self._engine.store.load_journal(self.id)]

    async def send_event(self, type: str, payload: Any = None, *,
                         step: str | None = None) -> None:
        """Send an event to the instance. It wakes a wait for that type, or is buffered
        (first in, first out, per type) until the run waits for it.

        Args:
            step: address the event to the open wait of this name (when a ``gather``
                waits on several of one type, e.g. two approvers): only that wait
                consumes it. The instance must wait there now (`InstanceStatus.waits`
                lists the open waits).

        Raises:
            InvalidArgumentError: the type is malformed or the payload is not JSON.
            LimitExceededError: the payload is over 1 MiB.
            InvalidStateError: the instance has finished, or ``step`` is given and the
                instance has no open wait of that name and type (or several).
        """
        if step is None:
            await self._send_event(type, payload)
            return

        def that_wait(row: InstanceRow) -> OpenWait:
            found = [o for o in open_waits(row)
                     if o.wait.step == step and o.wait.type == type]
            if len(found) != 1 or found[0].seq is None:
                waits = [(o.wait.step, o.wait.type) for o in open_waits(row)]
                raise InvalidStateError(
                    f"instance {self.id!r} has {'several open waits' if found else 'no open wait'}"
                    f" named {step!r} for a {type!r} event; nothing was sent. Its open event "
                    f"waits (step, type): {waits}")
            return found[0]

        await self._send_event(type, payload, address=that_wait)

    async def send_event_to_wait(self, ref: str, type: str, payload: Any = None) -> bool:
        """Send an event to the very wait ``ref`` names (one of `open_waits`, read
        earlier), checked in the send's own transaction: no restart and no other answer
        can come between, and only that wait consumes it (under ``gather`` another
        wait of the same type does not). Returns False, having sent nothing, when that
        wait is no longer open (a person's answer must reach the very wait they were
        shown).

        Raises:
            the errors of `send_event`.
        """
        def that_wait(row: InstanceRow) -> OpenWait:
            for o in open_waits(row):
                if o.ref == ref:
                    return o
            raise _StaleWait

        try:
            await self._send_event(type, payload, address=that_wait)
        except _StaleWait:
            return False
        return True

    async def _send_event(self, type: str, payload: Any,
                          address: Callable[[InstanceRow], OpenWait] | None = None) -> None:
        """`send_event`, addressed to the wait ``address(row)`` picks in the same
        transaction as the send; it raises to send nothing (an approval must reach the
        very wait a person saw)."""
        check_event_type(type)
        text = encode_value(payload, what=f"the payload of event {type!r}")
        now = self._engine.clock.now()

        def wait_seq(row: InstanceRow) -> int | None:
            return address(row).seq if address is not None else None

        def decide(row: InstanceRow) -> InstanceChange | None:
            if address is not None:
                address(row)
            if row.status in TERMINAL_STATUSES:
                raise InvalidStateError(f"instance {self.id!r} is {row.status}; an event can "
                                        f"only be sent to an instance that has not finished")
            if (row.status == "waiting" and row.waiting_on
                    and type in json.loads(row.waiting_on).get("types", [])):
                return InstanceChange(at=now, status="queued", due_at=now, waiting_on=None)
            return None

        if not await self._engine.store.add_event(self.id, type, text, now, decide, wait_seq):
            raise InstanceNotFoundError(f"no instance with id {self.id!r}")
        self._engine.start_claiming()
        self._engine.nudge(self.id)

    async def pause(self) -> None:
        """Pause the instance. A running one pauses after its current step
        (``waiting_for_pause`` until then); a waiting or queued one pauses at once."""
        now = self._engine.clock.now()

        def decide(row: InstanceRow) -> InstanceChange | None:
            self._refuse_if_finished(row, "pause")
            if row.status in ("queued", "waiting"):
                return InstanceChange(at=now, status="paused", due_at=None, waiting_on=None)
            if row.status == "running":
                return InstanceChange(at=now, status="waiting_for_pause")
            return None

        await self._transition(decide)

    async def resume(self) -> None:
        """Resume a paused instance; it replays and goes on where it was."""
        now = self._engine.clock.now()

        def decide(row: InstanceRow) -> InstanceChange | None:
            self._refuse_if_finished(row, "resume")
            if row.status == "paused":
                return InstanceChange(at=now, status="queued", due_at=now)
            if row.status == "waiting_for_pause":
                return InstanceChange(at=now, status="running")
            return None

        await self._transition(decide)
        self._engine.start_claiming()

    async def terminate(self) -> None:
        """Stop the instance for good. A step in flight here is cancelled at once (its
        result would not be recorded); nothing more of the run is recorded."""
        now = self._engine.clock.now()

        def decide(row: InstanceRow) -> InstanceChange | None:
            if row.status == "terminated":
                return None
            self._refuse_if_finished(row, "terminate")
            return InstanceChange(at=now, status="terminated", due_at=None, waiting_on=None,
                                  bump_fence=True, clear_lease=True)

        running = self._engine.running_task(self.id)
        await self._transition(decide)
        _cancel_old_run(running)

    async def restart(self, from_step: str | None = None, *, by: str | None = None) -> None:
        """Run the instance again from the top, with the same params.

        Events sent before the restart and not consumed yet are dropped with the old
        run: they were addressed to it (an approval must not carry over to a run nobody
        approved). Events consumed by kept steps stay; events sent after the restart
        reach the new run. The restart is recorded with who made it (`restarts`).

        Args:
            from_step: keep the journal before the first step of this name and run again
                from it; by default the whole journal is dropped.
            by: who restarts, as recorded (default: ``"operator <login> via python"``).

        Raises:
            InvalidArgumentError: no step of that name is in the journal.
        """
        await self._restart(from_step, by=by or default_actor("python"))

    async def restarts(self) -> list[OperatorAction]:
        """Every restart of this instance, oldest first, with who made it and from where."""
        await self._row()
        return await restarts(self._engine.store, self.id)

    async def _restart(self, from_step: str | None, *, by: str, payload: str | None = None,
                       version: str | None = None,
                       refuse_kept: Callable[[list[JournalRow]], None] | None = None) -> None:
        """Restart; ``refuse_kept(kept_rows)`` may raise to refuse before anything changes."""
        first = 1
        journal = await self._engine.store.load_journal(self.id)
        if from_step is not None:
            seqs = [r.seq for r in journal if r.name == from_step]
            if not seqs:
                await self._row()
                names = sorted({r.name for r in journal})
                raise InvalidArgumentError(f"instance {self.id!r} has no step named "
                                           f"{from_step!r}; its steps are {names}")
            first = min(seqs)
        if refuse_kept is not None:
            refuse_kept([r for r in journal if r.seq < first])
        now = self._engine.clock.now()
        # Recorded in the restart's own transaction: a crash cannot leave a restart
        # with no record of who made it.
        log = restart_entry(self.id, from_step=from_step, at=time.time(), by=by,
                            version=version)

        def decide(row: InstanceRow) -> InstanceChange | None:
            return InstanceChange(at=now, status="queued", due_at=now, output=None, error=None,
                                  waiting_on=None, bump_fence=True, clear_lease=True,
                                  delete_steps_from=first, payload=payload, log=log)

        running = self._engine.running_task(self.id)
        await self._transition(decide)
        _cancel_old_run(running)
        self._engine.start_claiming()

    async def wait(self, timeout: Any = None, *, poll: float = 0.2) -> InstanceStatus:
        """Wait until the instance is finished, paused, or waiting on something in the
        future (a sleep, an event, a retry) and return its status.

        Args:
            timeout: the longest to wait (a duration); None waits for ever.
            poll: seconds between reads of the store, for work done by other processes.

        Raises:
            TimeoutError: the instance was still busy when the timeout ran out.
        """
        engine = self._engine
        engine.start_claiming()  # waiting for progress asks for it
        deadline = None if timeout is None else time.monotonic() + parse_duration(timeout)
        while True:
            # A run of this process tells its waiters when it ends or parks; only work
            # done elsewhere needs the store polled.
            every = max(poll, _LOCAL_RUN_POLL) if engine.running_task(self.id) else poll
            with engine.changes.watch(self.id, poll=every) as watch:
                row = await self._row()
                if row.status in RESTING_STATUSES or (
                        row.status == "waiting" and row.due_at is not None
                        and row.due_at > engine.clock.now()):
                    return instance_status(row)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"instance {self.id!r} was still {row.status} after "
                                       f"{timeout!r}")
                engine.changes.polled(watch, row)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(watch.changed.wait(), remaining)

    @staticmethod
    def _refuse_if_finished(row: InstanceRow, action: str) -> None:
        if row.status in TERMINAL_STATUSES:
            raise InvalidStateError(f"cannot {action} instance {row.id!r}: it is {row.status}. "
                                    f"Use restart() to run it again")

    async def _transition(self, decide: Any) -> None:
        if await self._engine.store.transition(self.id, decide) is None:
            raise InstanceNotFoundError(f"no instance with id {self.id!r}")
        self._engine.nudge(self.id)


_LOCAL_RUN_POLL = 5.0


def _cancel_old_run(task: asyncio.Task[None] | None) -> None:
    """End the run a terminate or restart made moot (taken before its transition, so a
    new run claimed meanwhile is left alone)."""
    if task is not None and task is not asyncio.current_task() and not task.done():
        task.cancel()


class WorkflowBinding:
    """Creates and finds instances of one workflow (Cloudflare's Workflow binding)."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine = engine
        self.name = name

    def __repr__(self) -> str:
        return f"WorkflowBinding({self.name!r})"

    async def create(self, params: Any = None, id: str | None = None) -> Instance:
        """Create an instance that starts as soon as a scheduler picks it up.

        Args:
            params: the JSON payload the run sees as ``event.payload`` (at most 1 MiB).
            id: the instance id (1-100 of ``[A-Za-z0-9_-]``); generated when None.

        Raises:
            InvalidArgumentError: the id is malformed or taken, or params are not JSON.
            LimitExceededError: params over 1 MiB.
        """
        row = self.prepare(params, id)
        if not await self._engine.insert_instances([row]):
            raise InvalidArgumentError(f"an instance with id {row.id!r} already exists; "
                                       f"choose another id, or use get({row.id!r})")
        return Instance(self._engine, row.id, self.name)

    async def create_batch(self, items: Iterable[Mapping[str, Any]]) -> list[Instance]:
        """Create many instances in one transaction: ``[{"params": ..., "id": ...}, ...]``.

        Idempotent on explicit ids: an id that exists already is skipped (the existing
        instance is left as it is). Every item is checked before anything is written.

        Returns:
            A handle for every item, in order.
        """
        rows = []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or set(item) - {"params", "id"}:
                raise InvalidArgumentError(f"create_batch item {i} must be a dict with "
                                           f"'params' and optionally 'id', got {item!r:.100}")
            rows.append(self.prepare(item.get("params"), item.get("id")))
        if not rows:
            return []
        created = set(await self._engine.insert_instances(rows))
        handles = []
        for r in rows:
            workflow = self.name
            if r.id not in created:  # skipped: a handle to what holds the id, as it is
                existing = await self._engine.store.get_instance(r.id)
                workflow = existing.workflow if existing is not None else self.name
            handles.append(Instance(self._engine, r.id, workflow))
        return handles

    async def get(self, id: str) -> Instance:
        """A handle to an existing instance of this workflow.

        Raises:
            InstanceNotFoundError: no instance of this workflow has that id.
        """
        row = await self._engine.store.get_instance(id) if isinstance(id, str) else None
        if row is None or row.workflow != self.name:
            raise InstanceNotFoundError(f"no instance of workflow {self.name!r} with id {id!r}")
        return Instance(self._engine, row.id, self.name)

    # -- hooks for wrappers (`agentflow.plans.dispatch.WrappedBinding` builds on them) ---
    @property
    def engine(self) -> Engine:
        """The engine this binding creates instances in."""
        return self._engine

    def prepare(self, params: Any, instance_id: str | None = None, *,
                scope: str | None = None) -> NewInstance:
        """The row of a new instance of this workflow, checked and encoded but not
        written: ``params`` as JSON, the id checked (or a random UUID when None), filed
        under ``scope``. `create` writes such rows; wrappers write their own.

        Raises:
            InvalidArgumentError: a malformed id, or params that are not JSON.
            LimitExceededError: params over 1 MiB.
        """
        what = "params of the new instance" if instance_id is None else (
            f"params of instance {check_instance_id(instance_id)!r}")
        payload = encode_value(params, what=what)
        instance_id = str(uuid.uuid4()) if instance_id is None else instance_id
        return NewInstance(instance_id, self.name, payload, self._engine.clock.now(), scope)
