"""The engine: registered workflows, a scheduler that claims due instances, and runners.

One `Engine` per process and database. Inside ``async with engine:`` its scheduler
claims instances that are due (new, woken by a timer or an event, or whose previous
holder's lease expired), runs each as an asyncio task, and parks it again when it
suspends. Several processes may run engines on the same database: leases with fencing
tokens make sure an instance runs in one place at a time.

Leases: a claim and each renewal give a run a deadline on this process's monotonic
clock; the store judges expiry on the database's clock alone. A renewal that finds a
lease lost cancels that run, and a run never starts a step body past its deadline
(`Activation.check_lease`), so a process frozen past its lease does nothing another
worker may be doing. Closing hands every claim back (see `Engine.close`).

(Over 400 lines, on purpose: registration, the lifecycle, the scheduler, lease
renewal and the runner share one state, the map of runs in flight and their
deadlines, and the order in which `close` stops them; split apart, each would reach
into the others' halves of it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Sequence,
)
from typing import Any, Literal, TypeVar, overload

from agentflow._durations import to_datetime
from agentflow._feed import Change, subscribe
from agentflow._instance import Instance, WorkflowBinding, instance_status
from agentflow._limits import check_statuses, dumps, encode_value
from agentflow._retention import Retention
from agentflow._schedules import Schedules
from agentflow._step import Activation, Step
from agentflow.clock import Clock, SystemClock
from agentflow.errors import (
    EngineNotStartedError,
    InstanceNotFoundError,
    InvalidArgumentError,
    LeaseLost,
    Suspend,
    WorkflowNotFoundError,
    error_record,
)
from agentflow.models import Event, InstanceStatus
from agentflow.store import (
    InstanceRow,
    NewInstance,
    RunCommit,
    RunFinish,
    ScopeQuota,
    Store,
    open_store,
)

__all__ = ["Engine", "WorkflowFn"]

log = logging.getLogger("agentflow.engine")

#: How often a busy engine checks that its runs' fences still hold (one small read).
_FENCE_CHECK_SECONDS = 0.5

WorkflowFn = Callable[[Event, Step], Awaitable[Any]]
F = TypeVar("F", bound=WorkflowFn)


InstanceMark = tuple[Any, ...]


def instance_mark(row: InstanceRow) -> InstanceMark:
    """What `Store.instance_marks` reads of a row: it differs once the row moved."""
    return (row.status, row.due_at, row.fence, row.updated_at)


@dataclasses.dataclass(eq=False)
class Watch:
    """One waiter on one instance (see `Changes.watch`)."""

    changed: asyncio.Event
    poll: float | None  # seconds between store reads; None: changes of this process only
    seen: InstanceMark | None = None  # what the waiter last read
    due: float = 0.0  # monotonic time of its next store read


class Changes:
    """Wakes `Instance.wait` when its instance changed: at once for a change made in
    this process (a run ended or parked, an event arrived), and for work done by other
    processes through one poller that reads every watched instance in one query.

    A change names the instances it touched and wakes only their waiters: with a
    thousand instances waited on at once, waking every waiter on every change made each
    change cost a thousand store reads, and a poll per waiter read the store a thousand
    times per poll interval. A change that names none wakes every waiter.
    """

    def __init__(self, read_marks: Callable[[list[str]], Awaitable[dict[str, InstanceMark]]]
                 ) -> None:
        self._watchers: dict[str, set[Watch]] = {}
        self._read_marks = read_marks
        self._poller: asyncio.Task[None] | None = None
        self._poller_wake = asyncio.Event()
        self._next_poll = 0.0  # when the poller wakes next on its own

    @contextlib.contextmanager
    def watch(self, instance_id: str, *, poll: float | None = None) -> Iterator[Watch]:
        """A watch whose ``changed`` is set by the next change to ``instance_id``.

        Enter it before reading the instance, so a change made between the read and
        the wait is not missed; then call `polled` with what was read, so that the
        poller (every ``poll`` seconds) compares the store against it.
        """
        watch = Watch(asyncio.Event(), poll)
        watchers = self._watchers.setdefault(instance_id, set())
        watchers.add(watch)
        try:
            yield watch
        finally:
            watchers.discard(watch)
            if not watchers and self._watchers.get(instance_id) is watchers:
                del self._watchers[instance_id]

    def polled(self, watch: Watch, row: InstanceRow) -> None:
        """The waiter read ``row``: the poller wakes it once the store shows otherwise."""
        if watch.poll is None:
            return
        watch.seen = instance_mark(row)
        watch.due = time.monotonic() + watch.poll
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(
                self._poll(), name="agentflow-wait-poller")
        elif watch.due < self._next_poll:
            self._poller_wake.set()

    def notify(self, instance_ids: Iterable[str] | None = None) -> None:
        """Wake the waiters of ``instance_ids``; of every instance when None."""
        if instance_ids is None:
            groups: Iterable[set[Watch]] = list(self._watchers.values())
        else:
            groups = [w for w in map(self._watchers.get, instance_ids) if w]
        for watchers in groups:
            for watch in watchers:
                watch.changed.set()

    def close(self) -> None:
        """Stop polling, and wake every waiter (to find the engine closed)."""
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        self.notify()

    async def _poll(self) -> None:
        """Read, in one query per tick, every watched instance whose poll is due."""
        while True:
            self._poller_wake.clear()
            polled = [(instance_id, watch) for instance_id, watchers in self._watchers.items()
                      for watch in watchers if watch.poll is not None and watch.seen]
            if not polled:
                return
            now = time.monotonic()
            # Reading a watch a little early batches it with the others.
            tick = min(watch.poll for _, watch in polled if watch.poll is not None)
            due = [(i, w) for i, w in polled if w.due <= now + tick / 2]
            if not due:
                self._next_poll = min(w.due for _, w in polled)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poller_wake.wait(), self._next_poll - now)
                self._next_poll = 0.0
                continue
            try:
                marks = await self._read_marks(sorted({i for i, _ in due}))
            except Exception:  # the waiters read for themselves, and see the error
                marks = {}
            for instance_id, watch in due:
                if marks.get(instance_id) != watch.seen:
                    watch.changed.set()
                watch.due = time.monotonic() + (watch.poll or 0.0)


class Engine:
    """A durable workflow engine on one database.

    Example:
        engine = Engine("sqlite:///agentflow.db")

        @engine.workflow("greet")
        async def greet(event, step):
            user = await step.do("lookup", lambda: {"name": event.payload["name"]})
            return f"hello {user['name']}"

        async with engine:
            inst = await engine.binding("greet").create(params={"name": "Ada"})
            print((await inst.wait()).output)

    Args:
        url: ``memory://``, ``sqlite:///path.db`` or a `Store`; default ``$AGENTFLOW_DB``,
            else ``./agentflow.db``.
        clock: the source of workflow time; `agentflow.testing.ManualClock` in tests.
        max_concurrency: how many instances this process runs at once.
        lease_seconds: how long a claim lasts without renewal; a crashed process's
            instances are taken over this long after it died.
        poll_interval: seconds between looks at the store for work that other processes
            made due (work made due in this process is seen at once). Default 0.2; on a
            store that pushes changes (PostgreSQL's LISTEN/NOTIFY wakes the scheduler at
            once) the poll only finds leases of crashed holders, so it defaults to
            ``lease_seconds / 2``, at most 5 s.
        run_scheduler: True (the default) claims and runs due instances from the
            start, as a worker does. False makes a client-only engine that creates
            and steers instances but runs none (another process's worker runs them).
            ``"on_demand"`` claims nothing until this process asks for progress: it
            creates an instance, sends an event, resumes, restarts or waits for one,
            or calls `start_claiming`; so a script that only reads (lists, statuses,
            histories) never claims anyone's work.
        max_journal_bytes: a quota on the bytes of step results and errors one
            instance's journal may hold (None: no quota beyond the step count). A step
            result that would pass it fails its step with `LimitExceededError` (not
            retried, and the result is not stored). `AgentFlow` sets it from
            ``Quotas.instance_journal_bytes``.
    """

    def __init__(self, url: str | Store | None = None, *, clock: Clock | None = None,
                 max_concurrency: int = 256, lease_seconds: float = 30.0,
                 poll_interval: float | None = None,
                 run_scheduler: bool | Literal["on_demand"] = True,
                 max_journal_bytes: int | None = None) -> None:
        if max_concurrency < 1:
            raise InvalidArgumentError("max_concurrency must be at least 1")
        if lease_seconds <= 0:
            raise InvalidArgumentError("lease_seconds must be positive")
        self._store = open_store(url)
        self.clock: Clock = clock or SystemClock()
        self.max_concurrency = max_concurrency
        self.lease_seconds = lease_seconds
        if max_journal_bytes is not None and max_journal_bytes < 1:
            raise InvalidArgumentError("max_journal_bytes must be positive (or None)")
        self.max_journal_bytes = max_journal_bytes
        if poll_interval is None:
            poll_interval = (min(5.0, lease_seconds / 2) if self._store.pushes_changes
                             else 0.2)
        self.poll_interval = poll_interval
        self.run_scheduler = run_scheduler
        self._claiming = run_scheduler is True
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._workflows: dict[str, WorkflowFn] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._fences: dict[str, int] = {}  # the fence each running instance was claimed at
        # Per run: until when (time.monotonic()) its lease surely holds.
        self._lease_deadlines: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Event | None = None
        self._changes: Changes | None = None
        self._started = False
        self._closing = False
        self._run_wrappers: list[Callable[[str, WorkflowFn], WorkflowFn]] = []
        #: Called with the ids of instances just created through this engine, in the
        #: creator's context (instrumentation: `agentflow.otel` notes the caller's trace).
        self.create_listeners: list[Callable[[list[str]], Awaitable[None]]] = []
        #: Recurring instances (cron or interval); fired by every engine that runs a
        #: scheduler. See `agentflow._schedules`.
        self.schedules = Schedules(self)
        #: Deleting finished instances, and retention policies (`agentflow._retention`).
        self.retention = Retention(self)

    # -- registration --------------------------------------------------------------
    @overload
    def workflow(self, name: F, /) -> F: ...
    @overload
    def workflow(self, name: str | None = None) -> Callable[[F], F]: ...

    def workflow(self, name: Any = None) -> Any:
        """Register ``async def run(event, step)`` under a name (default: the function's).

        Use as ``@engine.workflow("name")``, ``@engine.workflow()`` or ``@engine.workflow``.

        Raises:
            InvalidArgumentError: the function is not ``async``, or the name is taken.
        """
        if callable(name):  # bare @engine.workflow: the function came in place of a name
            fn = name
            self.register(fn.__name__, fn)
            return fn

        def register(fn: F) -> F:
            self.register(name or fn.__name__, fn)
            return fn
        return register

    def register(self, name: str, fn: WorkflowFn) -> None:
        """Register a workflow function without the decorator."""
        if not isinstance(name, str) or not name or len(name) > 256:
            raise InvalidArgumentError(f"workflow name must be 1 to 256 characters, "
                                       f"got {name!r}")
        if not (inspect.iscoroutinefunction(fn)
                or inspect.iscoroutinefunction(type(fn).__call__)):
            raise InvalidArgumentError(f"workflow {name!r} must be an `async def "
                                       f"run(event, step)` function")
        if name in self._workflows and self._workflows[name] is not fn:
            raise InvalidArgumentError(f"a workflow named {name!r} is registered already")
        self._workflows[name] = fn
        self.nudge()

    def wrap_runs(self, wrap: Callable[[str, WorkflowFn], WorkflowFn]) -> None:
        """Have every run call ``wrap(workflow_name, fn)`` instead of ``fn``: a seam for
        instrumentation (`agentflow.otel`), which may pass the run a proxy of its step.
        Wrappers apply in the order they were added, the last outermost."""
        self._run_wrappers.append(wrap)

    @property
    def workflows(self) -> list[str]:
        return sorted(self._workflows)

    def workflow_function(self, name: str) -> WorkflowFn:
        """The function registered under ``name`` (to register it in another engine).

        Raises:
            WorkflowNotFoundError: nothing is registered under that name.
        """
        if name not in self._workflows:
            raise WorkflowNotFoundError(f"no workflow named {name!r} is registered; "
                                        f"registered: {self.workflows}")
        return self._workflows[name]

    def binding(self, name: str) -> WorkflowBinding:
        """The handle to create and get instances of a registered workflow.

        Raises:
            WorkflowNotFoundError: nothing is registered under that name.
        """
        self.workflow_function(name)  # raises WorkflowNotFoundError
        return WorkflowBinding(self, name)

    # -- lifecycle -----------------------------------------------------------------
    @property
    def store(self) -> Store:
        if not self._started:
            raise EngineNotStartedError("the engine is not started: use `async with engine:` "
                                        "or `await engine.start()` first")
        return self._store

    @property
    def changes(self) -> Changes:
        if self._changes is None:
            raise EngineNotStartedError("the engine is not started")
        return self._changes

    async def start(self) -> None:
        """Open the store (migrating its schema) and start the scheduler."""
        if self._started:
            return
        await self._store.open()
        self._wake = asyncio.Event()
        self._changes = Changes(self._store.instance_marks)
        self._started, self._closing = True, False
        if self.run_scheduler:
            self._tasks = [asyncio.create_task(self._schedule(), name="agentflow-scheduler"),
                           asyncio.create_task(self._heartbeat(), name="agentflow-leases"),
                           asyncio.create_task(self._watch_fences(), name="agentflow-fences")]
            if self._claiming:  # on demand: not before this process asks for progress
                self._start_worker_duties()

    def _start_worker_duties(self) -> None:
        """Fire schedules, apply retention and say this process is a live worker: what
        a process that runs work does, and one that only reads must not."""
        self._tasks.append(asyncio.create_task(self.schedules.run(),
                                               name="agentflow-schedules"))

    async def close(self, grace: float = 0.5) -> None:
        """Stop claiming and hand every claim back at once, then close the store.

        The scheduler finishes the claim it may be making (those instances go straight
        back). Runs stop at their next step boundary and hand their instance back in the
        same commit that records where they stopped: it is ``queued`` and due at once
        for the next worker, not leased to a process that is gone. A step body still
        running after ``grace`` seconds is cancelled (it will run again wherever the
        instance goes next, as after a crash), and its claim is handed back too.
        """
        if not self._started:
            return
        self._closing = True
        self.nudge()  # the scheduler sees `_closing` and ends its loop
        self.schedules.stop()
        scheduler = [t for t in self._tasks if t.get_name() == "agentflow-scheduler"]
        for task in self._tasks:
            if task not in scheduler:
                task.cancel()
        if scheduler:  # not cancelled: a claim it is making must come back to hand over
            # Bounded: a store that hangs (a server gone, retried for a minute) must not
            # hold the close; a claim lost that way waits out its lease, as after a crash.
            await asyncio.wait(scheduler, timeout=max(grace, 10.0))
            for task in scheduler:
                task.cancel()
        held = list(self._running)  # read first: a finished run removes itself
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=grace)
        for task in running:
            task.cancel()
        await asyncio.gather(*self._tasks, *running, return_exceptions=True)
        self._running.clear()
        self._fences.clear()
        try:  # what the runs could not hand back themselves (cancelled mid-body)
            await self._store.release_leases(owner=self.owner, instance_ids=held,
                                             now=self.clock.now())
        except Exception:
            log.exception("handing claims back failed; they return when their lease "
                          "expires")
        if self.run_scheduler:  # no longer a live worker (see `agentflow._schedules`)
            with contextlib.suppress(Exception):
                await self._store.worker_gone(self.owner)
        if self._changes is not None:
            self._changes.close()
        await self._store.close()
        self._tasks = []
        self._started = False

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_claiming(self) -> None:
        """Let the scheduler claim due instances now (an engine made with
        ``run_scheduler="on_demand"`` waits for this, or for this process to create,
        wake or wait for an instance). A no-op on a client-only engine."""
        if self.run_scheduler and not self._claiming:
            self._claiming = True
            if self._started and not self._closing:
                self._start_worker_duties()
            self.nudge()

    def nudge(self, *instance_ids: str) -> None:
        """Tell the scheduler, and the waiters of ``instance_ids`` (of every instance
        when none are named), that something changed in this process."""
        if self._wake is not None:
            self._wake.set()
        if self._changes is not None:
            self._changes.notify(instance_ids or None)

    async def insert_instances(self, rows: Sequence[NewInstance],
                               quota: ScopeQuota | None = None) -> list[str]:
        """Write new instances (ids that exist are skipped), tell `create_listeners`
        about those created, and wake the scheduler (which starts claiming, see
        `start_claiming`). Returns the ids created.

        Raises:
            ScopeQuotaRefused: ``quota`` would be exceeded; nothing was written.
        """
        created = await self.store.create_instances(rows, quota)
        if created:
            for listener in self.create_listeners:
                await listener(list(created))
            self.start_claiming()
            self.nudge(*created)
        else:
            self.start_claiming()
        return created

    def running_task(self, instance_id: str) -> asyncio.Task[None] | None:
        """This process's task running the instance now, if any. A terminate or a
        restart cancels the one it found before moving the fence (nothing more of that
        run can be recorded, and a step body still running would only burn time; the
        sandbox kills a worker whose body does not stop)."""
        return self._running.get(instance_id)

    # -- reading ---------------------------------------------------------------------
    async def get_instance(self, instance_id: str) -> Instance:
        """A handle to any instance by id, whatever its workflow."""
        row = await self.store.get_instance(instance_id) if isinstance(instance_id,
                                                                       str) else None
        if row is None:
            raise InstanceNotFoundError(f"no instance with id {instance_id!r}")
        return Instance(self, row.id, row.workflow)

    async def list_instances(self, *, workflow: str | list[str] | None = None,
                             status: str | list[str] | None = None, limit: int = 100,
                             offset: int = 0) -> list[InstanceStatus]:
        """Statuses of instances, newest first, filtered by workflow and status."""
        workflows = [workflow] if isinstance(workflow, str) else workflow
        statuses = check_statuses(status)
        rows = await self.store.list_instances(workflows=workflows, statuses=statuses,
                                               limit=limit, offset=offset)
        return [instance_status(r) for r in rows]

    def subscribe(self, *, after: int | None = None,
                  instance_ids: Collection[str] | None = None,
                  agents: Collection[str] | None = None,
                  workflows: Collection[str] | None = None,
                  poll: float = 0.1) -> AsyncIterator[Change]:
        """Changes to instances, in commit order, from every process on this database.

        Example:
            async for change in engine.subscribe(after=cursor):
                print(change.instance_id, change.status)
                cursor = change.seq          # keep it: resume with after=cursor

        Args:
            after: the ``seq`` of the last change seen (0: from the oldest kept;
                None: from now).
            instance_ids: only these instances.
            agents: only instances of these agents.
            workflows: only instances of these workflows.
            poll: seconds between reads when nothing is new.

        Returns:
            An endless async iterator of `Change`; break out of the loop to stop.
        """
        return subscribe(self.store, after=after, instance_ids=instance_ids, agents=agents,
                         workflows=workflows, poll=poll)

    # -- scheduling ----------------------------------------------------------------
    async def _schedule(self) -> None:
        assert self._wake is not None
        while not self._closing:
            self._wake.clear()
            capacity = self.max_concurrency - len(self._running)
            names = list(self._workflows) if self._claiming else []
            if capacity > 0 and names:
                # Read before the claim is sent: the lease starts later on the database's
                # clock, so the local deadline is on the safe (early) side.
                asked = time.monotonic()
                try:
                    rows = await self._store.claim_due_instances(
                        owner=self.owner, workflows=names, now=self.clock.now(),
                        lease_seconds=self.lease_seconds, limit=capacity)
                except Exception:
                    log.exception("claiming due instances failed; trying again")
                    rows = []
                if self._closing:  # closed while claiming: hand these straight back
                    await self._store.release_leases(
                        owner=self.owner, instance_ids=[r.id for r in rows],
                        now=self.clock.now())
                    return
                for row in rows:
                    self._lease_deadlines[row.id] = asked + self.lease_seconds
                    stale = self._running.get(row.id)
                    if stale is not None:  # restarted while its old run was still in a
                        stale.cancel()     # step here: that run's fence is gone, end it
                    self._running[row.id] = asyncio.create_task(self._drive(row),
                                                                name=f"agentflow:{row.id}")
                    self._fences[row.id] = row.fence
                if rows:
                    self.nudge(*(r.id for r in rows))
                if len(rows) == capacity:
                    await asyncio.sleep(0)
                    continue
            await self._idle(names if capacity > 0 else [])

    async def _idle(self, names: list[str]) -> None:
        """Sleep until the next due time, a nudge, a change another process made (on a
        store that pushes them), or the poll interval."""
        assert self._wake is not None
        waits: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._wake.wait()),
            asyncio.create_task(self._store.wait_for_change(self.poll_interval))]
        if names:
            try:
                due = await self._store.next_due_at(names)
            except Exception:
                due = None
            if due is not None:
                waits.append(asyncio.create_task(self.clock.sleep_until(due)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _heartbeat(self) -> None:
        """Renew the leases of the runs in flight, a third of a lease apart.

        Each renewal moves a run's local deadline (monotonic clock) to a lease after the
        moment the renewal was sent; a run whose lease was not renewed was taken over
        (or terminated, or restarted) and is cancelled at once. A run never starts a
        step body past its deadline (`Activation.lease_expired`), so a process that was
        frozen, or whose loop was blocked, past its lease stops before doing anything
        another worker may be doing already.
        """
        while not self._closing:
            await asyncio.sleep(self.lease_seconds / 3)
            held = dict(self._running)
            if not held:
                continue
            asked = time.monotonic()
            try:
                renewed = set(await self._store.renew_leases(
                    owner=self.owner, instance_ids=list(held),
                    lease_seconds=self.lease_seconds))
            except Exception:
                log.exception("renewing leases failed; runs stop at their lease deadline "
                              "unless a later renewal succeeds")
                continue
            for instance_id, task in held.items():
                if instance_id in renewed:
                    self._lease_deadlines[instance_id] = asked + self.lease_seconds
                elif self._running.get(instance_id) is task and not task.done():
                    log.warning("instance %s: the lease was lost; stopping its run",
                                instance_id)
                    task.cancel()

    async def _watch_fences(self) -> None:
        """End runs made moot elsewhere: a terminate or restart by another process (the
        CLI, an MCP server) moves the fence; so does a takeover after a lost lease. The
        run is cancelled, which ends its step body (the sandbox kills a worker whose
        body does not stop) instead of letting it compute until its next commit."""
        while not self._closing:
            await asyncio.sleep(_FENCE_CHECK_SECONDS)
            held = {i: f for i, f in self._fences.items() if i in self._running}
            if not held:
                continue
            try:
                current = await self._store.get_fences(list(held))
            except Exception:
                log.exception("reading fences failed; trying again")
                continue
            for instance_id, fence in held.items():
                task = self._running.get(instance_id)
                if (current.get(instance_id) != fence and task is not None
                        and self._fences.get(instance_id) == fence and not task.done()):
                    task.cancel()

    async def _drive(self, row: InstanceRow) -> None:
        """Run one claimed instance until it finishes or parks."""
        activation: Activation | None = None
        try:
            # Fence 1 means this is the instance's first claim ever, so its journal is
            # empty: only claims hand out fences (saves a read per new instance).
            journal = [] if row.fence == 1 else await self._store.load_journal(row.id)
            activation = Activation(
                store=self._store, clock=self.clock, instance_id=row.id, fence=row.fence,
                journal=journal, stopping=lambda: self._closing,
                lease_deadline=lambda: self._lease_deadlines.get(row.id, 0.0),
                journal_quota=self.max_journal_bytes)
            finish = await self._run(row, activation)
            tail = activation.tail_rows(self.clock.now()) if finish.status in (
                "complete", "errored") else []
            await self._store.commit(RunCommit(row.id, row.fence, tail, finish=finish))
        except LeaseLost:
            if activation is not None and (activation.stopped or activation.expired):
                # Stopped at a step boundary by close(): hand the instance back, due
                # now, in the commit that records the run's end (fenced: a claim that
                # was lost meanwhile is left alone).
                now = self.clock.now()
                with contextlib.suppress(Exception):
                    await self._store.commit(RunCommit(row.id, row.fence, finish=RunFinish(
                        status="queued", at=now, due_at=now)))
        except asyncio.CancelledError:
            pass  # engine shutdown: close() hands the claim back
        except Exception:
            log.exception("instance %s: the store failed; its lease will expire and the "
                          "instance will be run again", row.id)
        finally:
            if self._running.get(row.id) is asyncio.current_task():  # not a newer run's
                del self._running[row.id]
                self._fences.pop(row.id, None)
                self._lease_deadlines.pop(row.id, None)
            self.nudge(row.id)

    async def _run(self, row: InstanceRow, activation: Activation) -> RunFinish:
        fn = self._workflows[row.workflow]
        for wrap in self._run_wrappers:
            fn = wrap(row.workflow, fn)
        failure: BaseException | None
        event = Event(payload=json.loads(row.payload), timestamp=to_datetime(row.created_at),
                      instance_id=row.id)
        try:
            try:
                output = await fn(event, Step(activation))
            finally:
                await activation.settle()  # gathered branches still committing
        except Suspend:
            if activation.fatal is None:
                return activation.suspend_finish(self.clock.now())
            output, failure = None, activation.fatal
        except LeaseLost:
            raise
        except Exception as exc:
            output, failure = None, activation.fatal or exc
            # (a plan's own error loses to a fatal one it may have caught and re-raised)
        else:
            failure = activation.fatal
            if failure is None and activation.waits:  # the run swallowed its suspension
                return activation.suspend_finish(self.clock.now())
        now = self.clock.now()
        if failure is None:
            try:
                text = encode_value(output, what=f"the output of workflow {row.workflow!r}")
                return RunFinish(status="complete", at=now, output=text)
            except InvalidArgumentError as exc:
                failure = exc
        return RunFinish(status="errored", at=now, error=dumps(error_record(failure)))
