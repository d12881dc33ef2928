"""Replay: the `step` object a run receives, and the journal rules it enforces.

Every ``step.*`` call takes the next position in the instance's journal. If the journal
already holds that position, the call must be for the same name and kind (else the run
is non-deterministic and the instance errors), and its journaled outcome is returned or
raised again without running anything. Otherwise the call does its work, commits the
outcome, and only then returns: step n+1 never starts before step n is durable.

A call that cannot finish now (a sleep not yet over, an event not yet here, a retry not
yet due) records what it waits for and raises `Suspend`, which unwinds the run; the
engine then parks the instance until the earliest of its waits falls due.

Events are consumed exactly once: a wait takes a pending event only if no other wait
of the run took it (checked with no await since the read), and the store refuses a
commit whose event another position consumed first; under ``gather`` the run parks
only once every branch has settled, listing every wait. An event addressed to one wait
(a person answering one of several gathered approvals) is that wait's alone.

(Over 400 lines, on purpose: `Activation` and `Step` are one set of replay rules, the
journal position, its commit and the checks before a body, seen from the engine's side
and from the plan's.)
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import inspect
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from agentflow._durations import (
    MAX_WAIT_SECONDS,
    RetryPolicy,
    parse_duration,
    parse_instant,
    parse_wait,
    to_datetime,
)
from agentflow._limits import (
    MAX_STEPS,
    check_event_type,
    check_step_name,
    dumps,
    encode_value,
)
from agentflow.clock import Clock
from agentflow.errors import (
    EngineSignal,
    InvalidArgumentError,
    LeaseLost,
    LimitExceededError,
    NonDeterminismError,
    NonRetryableError,
    Suspend,
    WorkflowTimeoutError,
    error_record,
    rebuild_error,
)
from agentflow.store import JournalRow, RunCommit, RunFinish, Store

__all__ = ["Activation", "Step"]

DEFAULT_STEP_TIMEOUT = 600.0
_DEFAULT_RETRIES = RetryPolicy()
_PLAIN = (str, int, float, bool, type(None))  # JSON round-trips these unchanged
#: The longest note a wait may carry (`Step.wait_for_event`).
MAX_WAIT_NOTE_CHARS = 2000
#: attempts kept in a step's detail (the last ones; the count stays in ``attempts``).
MAX_ATTEMPT_RECORDS = 20
#: lines of log kept per step call and per attempt
MAX_LOG_LINES = 200
MAX_LOG_CHARS = 8_000


class _AttemptLog:
    """The lines logged by one attempt of one step (see `Step.log`)."""

    __slots__ = ("activation", "lines", "number", "timer")

    def __init__(self, activation: Activation, number: int) -> None:
        self.activation = activation
        self.lines: list[str] = []
        self.number = number
        self.timer: asyncio.Timeout | None = None  # the attempt's timeout, once running


T = TypeVar("T")

_ATTEMPT: contextvars.ContextVar[_AttemptLog | None] = contextvars.ContextVar(
    "agentflow_attempt", default=None)


def current_attempt() -> int | None:
    """The attempt number (1 for the first) of the step body running in this context,
    or None outside a step body. Counted across replays and processes: a retry that
    runs in another worker days later is attempt 2."""
    current = _ATTEMPT.get()
    return None if current is None else current.number


async def untimed(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` inside a step body without its time counting against the
    attempt's timeout (the host's own waits, such as a rate limit that delays a step:
    a delay must never turn into a timed-out attempt)."""
    attempt = _ATTEMPT.get()
    timer = attempt.timer if attempt is not None else None
    deadline = timer.when() if timer is not None and not timer.expired() else None
    if timer is None or deadline is None:
        return await awaitable
    loop = asyncio.get_running_loop()
    began = loop.time()
    timer.reschedule(None)
    try:
        return await awaitable
    finally:
        if not timer.expired():
            timer.reschedule(deadline + (loop.time() - began))


def _append_capped(lines: list[str], new: list[str]) -> None:
    room = MAX_LOG_CHARS - sum(len(x) for x in lines)
    for line in new:
        if len(lines) >= MAX_LOG_LINES or room <= 0:
            if not lines or not lines[-1].startswith("[log truncated"):
                lines.append("[log truncated]")
            return
        lines.append(line[:room])
        room -= len(line)


class Activation:
    """One claim of one instance: the journal as loaded, and what this run adds to it."""

    def __init__(self, *, store: Store, clock: Clock, instance_id: str, fence: int,
                 journal: list[JournalRow], stopping: Callable[[], bool] = lambda: False,
                 lease_deadline: Callable[[], float] = lambda: float("inf"),
                 journal_quota: int | None = None) -> None:
        self.store = store
        self.journal_quota = journal_quota
        self.journal_bytes = sum(_row_bytes(row) for row in journal)
        self.journal_reserved = 0  # results checked against the quota, not committed yet
        self.committed_sizes: dict[int, int] = {}  # journal bytes of rows committed here
        self.stopping = stopping
        self.lease_deadline = lease_deadline
        self.expired = False  # stopped before a step body: the lease may be lost
        self.clock = clock
        self.instance_id = instance_id
        self.fence = fence
        self.journal = {row.seq: row for row in journal}
        self.next_seq = 0
        self.counts: dict[str, int] = {}
        self.waits: list[dict[str, Any]] = []
        self.taken_events: set[int] = set()
        #: seq -> set once the event wait at that position has looked for its event here.
        self.looked: dict[int, asyncio.Event] = {}
        self.fatal: BaseException | None = None  # an error no plan may catch
        self.tasks: set[asyncio.Task[Any]] = set()  # every task that made a step call
        self.stopped = False  # the engine stopped this run at a step boundary
        self.pending_logs: list[str] = []  # logged since the last step call
        self.new_logs: dict[int, list[str]] = {}  # seq -> lines logged before its call

    async def settle(self) -> None:
        """Wait until every other task of this run that made step calls is done.

        Under ``gather`` the first branch that suspends ends the run's own task at once,
        while its sibling branches are still committing their own waits or steps. The
        run parks only once they have settled, so that its finish lists every wait
        (each must be woken by its own event) and no branch writes after the finish.
        """
        me = asyncio.current_task()
        while pending := [t for t in self.tasks if t is not me and not t.done()]:
            try:
                await asyncio.wait(pending)
            except asyncio.CancelledError:  # the run is being ended: so are its branches
                for t in pending:
                    t.cancel()
                raise

    def position(self, name: str, kind: str) -> tuple[int, int, JournalRow | None]:
        """Take the next journal position for a call, checking it against the journal."""
        if self.fatal is not None:
            raise self.fatal
        if self.stopping():  # the engine is shutting down: stop between steps
            self.stopped = True
            raise LeaseLost("the engine is stopping")
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        self.next_seq += 1
        seq = self.next_seq
        if seq > MAX_STEPS:
            self.fatal = LimitExceededError(
                f"the run reached its step limit of {MAX_STEPS:,} steps at {kind} {name!r}; "
                f"split the work into several instances or batch items into fewer steps")
            raise self.fatal
        n = self.counts[name] = self.counts.get(name, 0) + 1
        row = self.journal.get(seq)
        logs, self.pending_logs = self.pending_logs, []
        if row is None and logs:  # a replay logs again what its first run logged: drop
            self.new_logs[seq] = logs
        if row is not None and (row.name != name or row.kind != kind):
            self.fatal = NonDeterminismError(
                f"replay diverged at step position {seq}: the journal has {row.kind} "
                f"{row.name!r} there, but the run now asked for {kind} {name!r}. A plan must "
                f"make the same step calls in the same order on every replay; branch only on "
                f"step results, step.now(), step.random() and step.uuid()")
            raise self.fatal
        return seq, n, row

    def with_detail(self, row: JournalRow, attempt: dict[str, Any] | None = None
                    ) -> JournalRow:
        """``row`` with its detail: the lines logged before its call and its attempts,
        carried over from what the journal already holds for that position."""
        prior = self.journal.get(row.seq)
        detail: dict[str, Any] = json.loads(prior.detail) if (
            prior is not None and prior.detail) else {}
        logs = self.new_logs.pop(row.seq, None)
        if logs:
            _append_capped(detail.setdefault("logs", []), logs)
        if attempt is not None:
            attempts = detail.setdefault("attempts", [])
            attempts.append(attempt)
            del attempts[:-MAX_ATTEMPT_RECORDS]
        text = dumps(detail) if detail else None
        if text is not None and self.journal_quota is not None:
            # Logs count against the journal quota like results do, and may fill half of
            # it; past that they are dropped (the attempts' errors are kept): a plan
            # cannot print its way past the quota, nor crowd out its own results.
            old = len((prior.detail or "").encode()) if prior is not None else 0
            grown = len(text.encode()) - old
            if self.journal_bytes + self.journal_reserved + grown > self.journal_quota // 2:
                for entry in [detail, *detail.get("attempts", [])]:
                    if entry.get("logs"):
                        entry["logs"] = ["[log dropped: the journal quota is full]"]
                text = dumps(detail)
        return dataclasses.replace(row, detail=text)

    def tail_rows(self, now: float) -> list[JournalRow]:
        """Lines logged after the last step call, as a ``log`` row after it (the run is
        ending: nothing replays past it, and a restart deletes it with the rest)."""
        if not self.pending_logs:
            return []
        lines: list[str] = []
        _append_capped(lines, self.pending_logs)
        self.pending_logs = []
        if self.journal_quota is not None and (self.journal_bytes + sum(
                len(x.encode()) for x in lines) > self.journal_quota // 2):
            lines = ["[log dropped: the journal quota is full]"]
        seq = max([self.next_seq, *self.journal]) + 1
        return [JournalRow(seq, "print", 1, "log", "ok", 1, now, finished_at=now,
                           detail=dumps({"logs": lines}))]

    async def commit(self, row: JournalRow, consumed: list[tuple[int, int]] | None = None,
                     *, attempt: dict[str, Any] | None = None) -> bool:
        """Make ``row`` durable (with the events it consumes, and with its detail: see
        `with_detail`). False: nothing was written, because another wait consumed one
        of those events first."""
        row = self.with_detail(row, attempt)
        # Shielded: a run's task cancelled while its commit is in flight (a gathered
        # sibling suspended it, in the sandbox) must still learn whether the commit
        # landed, so that what this activation believes matches the journal.
        writing = asyncio.ensure_future(self.store.commit(RunCommit(
            self.instance_id, self.fence, [row], consumed or [])))
        try:
            result = await asyncio.shield(writing)
        except asyncio.CancelledError:
            while not writing.done():  # however often the cancellation is repeated
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([writing])
            if not writing.cancelled() and writing.exception() is None and writing.result().ok:
                self.journal[row.seq] = row
            raise
        if not result.ok:
            if result.taken:
                return False
            raise LeaseLost(f"instance {self.instance_id} was taken over")
        size = _row_bytes(row)
        old = self.committed_sizes.get(row.seq)
        if old is None:
            old_row = self.journal.get(row.seq)
            old = _row_bytes(old_row) if old_row is not None else 0
        self.journal_bytes += size - old
        self.committed_sizes[row.seq] = size
        # This activation never reads a committed position's result again (each position
        # is taken once per run): keep its size, not its text.
        self.journal[row.seq] = row if row.result is None else dataclasses.replace(
            row, result=None)
        if result.status == "waiting_for_pause":
            raise Suspend("pause requested")  # the finish commit turns this into `paused`
        return True

    def check_lease(self, step: str) -> None:
        """Raise `LeaseLost` if this run's lease may have run out (its holder froze, or
        its loop was blocked, past the lease): another worker may be running the
        instance, so no step body may start here. Called just before a body starts,
        with no await in between."""
        if time.monotonic() >= self.lease_deadline():
            self.expired = True
            raise LeaseLost(f"instance {self.instance_id}: the lease may have run out "
                            f"before step {step!r}; not starting its body")

    def reserve_journal(self, name: str, size: int) -> int:
        """Count ``size`` bytes of a result about to be committed against the journal
        quota (steps of one ``gather`` commit concurrently: the check must include the
        ones still in flight). Returns the bytes reserved; raises `LimitExceededError`."""
        quota = self.journal_quota
        if quota is None:
            return 0
        held = self.journal_bytes + self.journal_reserved
        if held + size > quota:
            raise LimitExceededError(
                f"the result of step {name!r} ({size:,} bytes) would take this instance's "
                f"journal past its quota, Quotas.instance_journal_bytes={quota:,} (it holds "
                f"{held:,}); it was not stored. Keep large data out of step results (store "
                f"it elsewhere and return a reference), or the operator raises it with "
                f"AgentFlow(..., quotas=Quotas(instance_journal_bytes=...))")
        self.journal_reserved += size
        return size

    def wait(self, waiting_on: dict[str, Any]) -> Suspend:
        self.waits.append(waiting_on)
        return Suspend(f"waiting on {waiting_on['kind']} {waiting_on['step']!r}")

    def suspend_finish(self, now: float) -> RunFinish:
        """How the activation ends when the run waits: due at its earliest wait."""
        if not self.waits:  # suspended by a pause request: due now unless paused
            return RunFinish(status="queued", at=now, due_at=now)
        first = min(self.waits, key=lambda w: w["until"])
        types = tuple(sorted({w["type"] for w in self.waits if w["kind"] == "event"}))
        # The earliest wait, as before, and every wait the run is parked on (a gather
        # waits on several): each is listed, and any of their event types wakes it.
        return RunFinish(status="waiting", at=now, due_at=first["until"],
                         waiting_on=dumps({**first, "types": list(types),
                                           "waits": self.waits}),
                         wake_types=types,
                         wake_seqs=tuple(w["seq"] for w in self.waits if "seq" in w))


#: How long a wait that found nothing lets a gathered sibling look for the event
#: addressed to it before the run parks.
_SIBLING_LOOK_SECONDS = 30.0


def _row_bytes(row: JournalRow) -> int:
    return sum(len(text.encode("utf-8", "surrogatepass"))
               for text in (row.result, row.error, row.detail) if text is not None)


class Step:
    """The ``step`` argument of ``run(event, step)``: every durable operation of a run."""

    def __init__(self, activation: Activation) -> None:
        self._a = activation

    def log(self, *lines: str) -> None:
        """Keep lines in the instance's history (agent plans' ``print`` lands here).

        Inside a step's ``fn``, the lines belong to that attempt of the step. Anywhere
        else they belong to the next step call, and are kept only when that call runs
        for the first time: a replay logs again what its first run logged, and those
        duplicates are dropped. Lines logged after the last step call are kept as a
        ``log`` entry at the end of the history. Capped at 200 lines and 8,000
        characters per step call and per attempt.
        """
        text = [str(line) for line in lines]
        current = _ATTEMPT.get()
        if current is not None and current.activation is self._a:
            _append_capped(current.lines, text)
        else:
            _append_capped(self._a.pending_logs, text)

    async def do(self, name: str, fn: Callable[[], Any], *, retries: Any = None,
                 timeout: Any = None) -> Any:
        """Run ``fn`` once, durably, and return its result.

        ``fn`` takes no arguments and returns a JSON-serializable value (at most 1 MiB) or
        an awaitable of one. Once the result is committed, replays return it without
        calling ``fn`` again. A failing attempt is retried after a durable timer, as
        ``retries`` says (default ``{"limit": 5, "delay": "10 seconds", "backoff":
        "exponential"}``); raise `NonRetryableError` to stop at once. ``timeout`` bounds
        each attempt that returns an awaitable (default 10 minutes) and raises
        `WorkflowTimeoutError`. The final error is journaled and raised again on every
        replay, so the plan may catch it.

        A sync ``fn`` runs on the engine's event loop, like any sync call in async code:
        keep it quick, and make blocking I/O an ``async`` function (or wrap it,
        ``lambda: asyncio.to_thread(requests.get, url)``), so that other instances and
        the lease heartbeat keep running, and the timeout can end it.

        Args:
            name: a stable name for the step, at most 256 characters.
            fn: the work, a zero-argument callable.
            retries: the retry policy, as a dict of ``limit``, ``delay``, ``backoff``.
            timeout: a duration per attempt.

        Returns:
            The step's result, decoded from its journaled JSON.
        """
        check_step_name(name)
        if not callable(fn):
            raise InvalidArgumentError(f"step.do({name!r}, fn): fn must be a zero-argument "
                                       f"callable, got {type(fn).__name__}; wrap a value in "
                                       f"a lambda")
        policy = _DEFAULT_RETRIES if retries is None else RetryPolicy.parse(retries)
        attempt_timeout = (DEFAULT_STEP_TIMEOUT if timeout is None
                           else parse_duration(timeout, what=f"timeout of step {name!r}"))
        a = self._a
        seq, n, row = a.position(name, "do")
        attempts, started = 0, a.clock.now()
        if row is not None:
            if row.status == "ok":
                return json.loads(row.result or "null")
            if row.status == "error":
                raise rebuild_error(json.loads(row.error or "{}"), step=name)
            attempts, started = row.attempts, row.started_at
            if row.wake_at is not None and row.wake_at > a.clock.now():
                raise a.wait({"kind": "retry", "step": name, "until": row.wake_at,
                              "attempt": attempts + 1})
        earlier = bool(row is not None and row.attempts)
        while True:
            attempts += 1
            failure: BaseException | None = None
            timer: asyncio.Timeout | None = None
            value: Any = None
            text, reserved = "", 0
            attempt_log = _AttemptLog(a, attempts)
            attempt_started = a.clock.now()
            token = _ATTEMPT.set(attempt_log)
            try:
                a.check_lease(name)
                value = fn()
                if inspect.isawaitable(value):
                    async with asyncio.timeout(attempt_timeout) as timer:
                        attempt_log.timer = timer
                        value = await value
                text = encode_value(value, what=f"the result of step {name!r}")
                reserved = a.reserve_journal(name, len(text.encode()))
            except EngineSignal:
                raise
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the run is being cancelled (shutdown, a restart)
                failure = exc  # the body raised it itself: its error, not a signal
            except GeneratorExit as exc:
                failure = exc
            except TimeoutError as exc:
                # Only our own deadline is the step's timeout; a TimeoutError the body
                # raised itself (an upstream 504, a socket timeout) is its error, as is.
                failure = WorkflowTimeoutError(
                    f"step {name!r} attempt {attempts} timed out after {attempt_timeout:g} s"
                ) if timer is not None and timer.expired() else exc
            except Exception as exc:
                failure = exc
            finally:
                _ATTEMPT.reset(token)
            now = a.clock.now()
            entry: dict[str, Any] | None = {
                "attempt": attempts, "started_at": attempt_started, "ended_at": now,
                "error": None if failure is None else error_record(failure),
                "logs": attempt_log.lines}
            if failure is None:
                if not (earlier or attempt_log.lines):
                    entry = None  # one clean attempt: the row says it all
                try:
                    await a.commit(JournalRow(seq, name, n, "do", "ok", attempts, started,
                                              result=text, finished_at=now), attempt=entry)
                finally:
                    a.journal_reserved -= reserved
                return value if type(value) in _PLAIN else json.loads(text)
            earlier = True
            # The failure's traceback holds this frame until a garbage collection: keep
            # no large value in it (a plan that fails many big steps at once would pin
            # them all in the host's memory).
            value, text = None, ""
            record = error_record(failure)
            final = (isinstance(failure, NonRetryableError | LimitExceededError
                                | InvalidArgumentError) or attempts > policy.limit
                     or not getattr(failure, "retryable", True))
            if final:
                await a.commit(JournalRow(seq, name, n, "do", "error", attempts, started,
                                          error=dumps(record), finished_at=now),
                               attempt=entry)
                raise rebuild_error(record, step=name) from failure
            wake = now + policy.delay_before_retry(attempts)
            await a.commit(JournalRow(seq, name, n, "do", "retrying", attempts, started,
                                      error=dumps(record), wake_at=wake), attempt=entry)
            if wake > now:
                raise a.wait({"kind": "retry", "step": name, "until": wake,
                              "attempt": attempts + 1})

    async def sleep(self, name: str, duration: Any) -> None:
        """Sleep durably for a duration (seconds, timedelta or '3 days'; at most 365 days).

        The instance leaves memory and waits in the store; it wakes in any process that
        runs the engine on the same database.
        """
        check_step_name(name)
        seconds = parse_wait(duration, what=f"the duration of sleep {name!r}")
        await self._sleep(name, lambda now: now + seconds)

    async def sleep_until(self, name: str, when: datetime | float) -> None:
        """Sleep durably until a datetime (naive means UTC) or epoch seconds; a time in
        the past returns at once."""
        check_step_name(name)
        wake = parse_instant(when, what=f"the time of sleep_until {name!r}")
        if wake - self._a.clock.now() > MAX_WAIT_SECONDS:
            raise LimitExceededError(f"sleep_until {name!r} is more than 365 days ahead; "
                                     f"sleep in several steps")
        await self._sleep(name, lambda now: wake)

    async def _sleep(self, name: str, wake_at: Callable[[float], float]) -> None:
        a = self._a
        seq, n, row = a.position(name, "sleep")
        now = a.clock.now()
        if row is not None and row.status == "ok":
            return
        started = row.started_at if row is not None else now
        wake = row.wake_at if row is not None and row.wake_at is not None else wake_at(now)
        if wake <= now:
            await a.commit(JournalRow(seq, name, n, "sleep", "ok", 1, started, wake_at=wake,
                                      finished_at=now))
            return
        if row is None:
            await a.commit(JournalRow(seq, name, n, "sleep", "waiting", 1, started,
                                      wake_at=wake))
        raise a.wait({"kind": "sleep", "step": name, "until": wake})

    async def wait_for_event(self, name: str, *, type: str, timeout: Any = "24 hours",
                             note: str | None = None) -> dict[str, Any]:
        """Wait durably for an event of this type sent to the instance.

        Events sent before anyone waits are buffered, first in first out, per type.

        ``note`` (at most `MAX_WAIT_NOTE_CHARS` characters) is kept with the wait for
        whoever answers it: an approval's record shows it as the agent's note, quoted
        and escaped, beside what the plan will do (``InstanceStatus.waits`` lists it).

        Returns:
            ``{"type": ..., "payload": ..., "timestamp": <ISO 8601 string>}``.

        Raises:
            WorkflowTimeoutError: no such event arrived within ``timeout`` (default 24 h,
                at most 365 days). It is journaled: replays raise it again.
        """
        check_step_name(name)
        check_event_type(type)
        if note is not None and (not isinstance(note, str)
                                 or len(note) > MAX_WAIT_NOTE_CHARS):
            raise InvalidArgumentError(
                f"the note of wait_for_event {name!r} must be text of at most "
                f"{MAX_WAIT_NOTE_CHARS} characters")
        seconds = parse_wait(timeout, what=f"the timeout of wait_for_event {name!r}")
        a = self._a
        seq, n, row = a.position(name, "event")
        if row is not None and row.status == "ok":
            return dict(json.loads(row.result or "{}"))
        if row is not None and row.status == "error":
            raise rebuild_error(json.loads(row.error or "{}"), step=name)
        now = a.clock.now()
        started = row.started_at if row is not None else now
        deadline = row.wake_at if row is not None and row.wake_at is not None else now + seconds
        # "seq" lets a sender address this very wait (a person answers one of several).
        wait: dict[str, Any] = {"kind": "event", "step": name, "until": deadline,
                                "type": type, "seq": seq}
        if note:
            wait["note"] = note
        # Listed from the start: if a gathered sibling suspends the run and this call is
        # cancelled before it parks (the sandbox ends the run's other calls), the finish
        # still lists it, and its type still wakes the instance.
        a.waits.append(wait)
        try:
            value = await self._take_event(seq, n, row, name, type, started, deadline, now)
        except asyncio.CancelledError:
            done = a.journal.get(seq)
            if done is not None and done.status != "waiting":  # it landed all the same
                a.waits.remove(wait)
            raise
        except BaseException:
            a.waits.remove(wait)
            raise
        if value is None:
            raise Suspend(f"waiting on event {name!r}")
        a.waits.remove(wait)
        return value

    async def _take_event(self, seq: int, n: int, row: JournalRow | None, name: str,
                          type: str, started: float, deadline: float, now: float
                          ) -> dict[str, Any] | None:
        """Consume the oldest pending event of ``type`` for this wait and return it;
        None if there is none yet (the waiting position is then journaled)."""
        a = self._a
        looked = a.looked.setdefault(seq, asyncio.Event())
        try:
            return await self._take_or_park(seq, n, row, name, type, started, deadline, now)
        finally:
            looked.set()

    async def _take_or_park(self, seq: int, n: int, row: JournalRow | None, name: str,
                            type: str, started: float, deadline: float, now: float
                            ) -> dict[str, Any] | None:
        a = self._a
        while found := await a.store.pending_events(a.instance_id, type, wait_seq=seq,
                                                    exclude=list(a.taken_events)):
            ev = found[0]
            if ev.id in a.taken_events:
                continue  # another wait of this run (a gather) took it while we read
            a.taken_events.add(ev.id)  # no await since the read: no other wait has it
            value = {"type": ev.type, "payload": json.loads(ev.payload),
                     "timestamp": to_datetime(ev.created_at).isoformat()}
            if await a.commit(JournalRow(seq, name, n, "event", "ok", 1, started,
                                         result=dumps(value), finished_at=now,
                                         wake_at=deadline), consumed=[(ev.id, seq)]):
                return value
            # Consumed elsewhere first (the store keeps each event to one wait): next one.
        if now < deadline and row is not None:
            await self._let_addressed_siblings_look(seq, type)
        if now >= deadline:
            record = {"name": "WorkflowTimeoutError",
                      "message": f"no {type!r} event arrived for wait {name!r} within "
                                 f"{(deadline - started):g} s"}
            await a.commit(JournalRow(seq, name, n, "event", "error", 1, started,
                                      error=dumps(record), finished_at=now, wake_at=deadline))
            raise rebuild_error(record, step=name)
        if row is None:
            await a.commit(JournalRow(seq, name, n, "event", "waiting", 1, started,
                                      wake_at=deadline))
        return None

    async def _let_addressed_siblings_look(self, seq: int, type: str) -> None:
        """Before this wait parks the run, let the waits that an event is addressed to
        take it. A person answered one of several gathered waits (`Instance.send_event`
        with ``step``); this wait, found nothing for itself, would end the run (a
        sandboxed plan's run ends at its first suspension), and the addressed one would
        never see its event: woken again and again for it, the run would never move.
        Only waits parked together with this one are waited for, and a gather reaches
        each of them in the same activation, so each looks (and sets its flag)."""
        a = self._a
        pending = await a.store.pending_events(a.instance_id, type, limit=100,
                                               exclude=list(a.taken_events))
        parked = {s for s, r in a.journal.items() if r.kind == "event" and r.status == "waiting"}
        for other in sorted({e.wait_seq for e in pending if e.wait_seq is not None
                             and e.wait_seq != seq and e.wait_seq in parked}):
            # Bounded: a run whose code changed under it may never reach that wait; it
            # then parks as before rather than hold its claim for ever.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(a.looked.setdefault(other, asyncio.Event()).wait(),
                                       _SIBLING_LOOK_SECONDS)

    async def now(self) -> datetime:
        """The current time (UTC), journaled: every replay sees the same value."""
        return to_datetime(await self._journaled("now", lambda: self._a.clock.now()))

    async def random(self) -> float:
        """A random float in [0, 1), journaled: every replay sees the same value."""
        return float(await self._journaled("random", random.random))

    async def uuid(self) -> str:
        """A random UUID4 string, journaled: every replay sees the same value."""
        return str(await self._journaled("uuid", lambda: str(uuid.uuid4())))

    async def _journaled(self, kind: str, make: Callable[[], Any]) -> Any:
        a = self._a
        seq, n, row = a.position(kind, kind)
        if row is not None and row.status == "ok":
            return json.loads(row.result or "null")
        value = make()
        now = a.clock.now()
        await a.commit(JournalRow(seq, kind, n, kind, "ok", 1, now, result=dumps(value),
                                  finished_at=now))
        return value
