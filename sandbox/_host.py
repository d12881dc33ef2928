"""`WorkerPool`: the host-side async API that runs plans, one worker per agent.

Engine-agnostic: the pool never knows about the engine. The agent layer implements
`PlanHost` (what a step does, what a capability does) and calls `run_plan`.
"""

from __future__ import annotations

import asyncio
import collections
import re
from types import TracebackType
from typing import Any, Literal

from sandbox._compile import CompiledPlan, compile_plan
from sandbox._confine import uid_for_agent
from sandbox._connection import (
    Connection,
    InlineConnection,
    ProcessConnection,
    worker_cpu_seconds,
)
from sandbox._driver import RunDriver
from sandbox._errors import WorkerCrashedError
from sandbox._hostapi import PlanHost
from sandbox._limits import LAYER_NAMES, LayerStatus, Limits
from sandbox._slots import WorkerSlots
from sandbox._spawner import ZygoteClient

__all__ = ["WorkerPool"]

_CAPABILITY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_CPU_RECYCLE_FRACTION = 0.8


class WorkerPool:
    """Runs plans in one worker per agent: confined processes, or inline.

    Args:
        isolation: ``"process"`` (default) forks a confined worker per agent from a
            zygote started by `start`; ``"inline"`` runs plans in this process and
            event loop with layers 1-2 only, which is **not a security boundary**
            (trusted code, tests, notebooks).
        limits: resource limits and layer switches (`Limits`).
        max_workers: workers alive at once. A worker that runs something is never
            stopped to make room: past ``max_workers`` the least recently used *idle*
            worker is stopped (and rebuilt invisibly on its agent's next run), and when
            every worker is busy, further agents' runs wait for a slot, first come first
            served across agents (`waiting`), so no agent is starved.

    Example:
        >>> async with WorkerPool() as pool:                          # doctest: +SKIP
        ...     value = await pool.run_plan("agent-42", source, event, host,
        ...                                 capabilities=["http"])
    """

    def __init__(self, *, isolation: Literal["process", "inline"] = "process",
                 limits: Limits | None = None, max_workers: int = 64) -> None:
        if isolation not in ("process", "inline"):
            raise ValueError(f"isolation must be 'process' or 'inline', got {isolation!r}")
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.isolation = isolation
        self.limits = limits or Limits()
        self.max_workers = max_workers
        self._workers: collections.OrderedDict[str, Connection] = collections.OrderedDict()
        self._starting: dict[str, asyncio.Future[Connection]] = {}
        self._slots = WorkerSlots(max_workers, self._workers, self._stop)
        self._zygote: ZygoteClient | None = None
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the zygote (process isolation). Idempotent."""
        if self._started:
            return
        if self.isolation == "process":
            self._zygote = ZygoteClient(self.limits)
            await self._zygote.start()
        self._started = True

    async def close(self) -> None:
        """Kill every worker and stop the zygote."""
        self._started = False
        self._slots.fail_waiters(WorkerCrashedError("the WorkerPool was closed"))
        for connection in list(self._workers.values()):
            await connection.close()
        self._workers.clear()
        if self._zygote is not None:
            await self._zygote.close()
            self._zygote = None

    async def __aenter__(self) -> WorkerPool:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    @property
    def layers(self) -> list[LayerStatus]:
        """The confinement layers this pool applies to its workers (after `start`).

        ``available`` is true for a layer that is switched on and works here; the
        detail says what it does or why it is missing. Inline pools apply none.
        """
        if self._zygote is None:
            return [LayerStatus(name, False, "inline isolation: not applied")
                    for name in LAYER_NAMES]
        applied = set(self._zygote.applied)
        return [LayerStatus(s.name, s.name in applied, s.detail if s.name in applied
                            else f"not applied: {s.detail}") for s in self._zygote.layers]

    @property
    def waiting(self) -> list[tuple[str, str | None, float]]:
        """Runs waiting for a worker slot, oldest first: ``(agent_id, label, since)``
        (``label`` as passed to `run_plan`, ``since`` on the event loop's clock)."""
        return self._slots.waiting

    def waiting_since(self, label: str) -> float | None:
        """When the run labelled ``label`` began to wait for a worker slot (the event
        loop's clock), or None if it does not wait."""
        return self._slots.waiting_since(label)

    @property
    def busy_workers(self) -> int:
        """How many slots are held by runs in progress."""
        return self._slots.busy

    @property
    def machine_layers(self) -> list[LayerStatus]:
        """What this machine supports, layer by layer, as the zygote probed it at
        `start` (whether or not this pool applies it); inline pools: none."""
        return list(self._zygote.layers) if self._zygote is not None else []

    def worker_layers(self, agent_id: str) -> dict[str, str]:
        """The layers the agent's live worker reported applied, name to detail (no
        live worker: {})."""
        connection = self._workers.get(agent_id)
        return dict(connection.layers) if connection is not None else {}

    @property
    def sandbox_pid(self) -> int | None:
        """The pid of the zygote every worker is forked from (its children are the
        workers and a spare), if running (diagnostics, benchmarks)."""
        return self._zygote.pid if self._zygote is not None else None

    def worker_pid(self, agent_id: str) -> int | None:
        """The pid of the agent's live worker process, if any (diagnostics, benchmarks)."""
        connection = self._workers.get(agent_id)
        return connection.pid if connection is not None and connection.dead is None else None

    # -- running plans -------------------------------------------------------------------

    async def run_plan(self, agent_id: str, plan: CompiledPlan | str, event: dict[str, Any],
                       host: PlanHost, *, capabilities: list[str],
                       label: str | None = None) -> Any:
        """Run ``run(event, step)`` of ``plan`` in the agent's worker.

        Args:
            agent_id: whose worker runs it (started on demand, then cached).
            plan: a `CompiledPlan`, or source text (validated and compiled here).
            event: ``{"payload": ..., "timestamp": ISO text, "instance_id": str}``;
                the plan sees ``event.payload``, ``event.timestamp`` (an aware
                ``datetime``) and ``event.instance_id``.
            host: answers the plan's step and capability calls (`PlanHost`).
            capabilities: names the plan's ``env`` exposes (``env.http`` ...).
            label: names this run in `waiting` while it waits for a worker slot
                (the agent layer passes the instance id).

        Returns:
            The plan's return value, JSON round-tripped (a top-level ``datetime`` stays
            one).

        Raises:
            PlanValidationError: ``plan`` is invalid source.
            PlanRuntimeError: the plan raised an error it did not catch.
            SandboxTimeoutError: the worker computed past ``Limits.call_timeout`` and
                was killed.
            WorkerCrashedError: the worker died (a limit, a protocol violation, an
                eviction during the run).
            MessageTooLargeError: ``event`` is over ``Limits.max_message_bytes``.
            BaseException: what ``host.step`` raised to suspend the run, as is.
        """
        if not self._started:
            raise RuntimeError("the WorkerPool is not started: use `async with pool:` or "
                               "`await pool.start()` first")
        compiled = plan if isinstance(plan, CompiledPlan) else compile_plan(plan)
        if not isinstance(event, dict):
            raise TypeError(f"event must be a dict, got {type(event).__name__}")
        bad = [c for c in capabilities if not isinstance(c, str) or not _CAPABILITY.match(c)]
        if bad:
            raise ValueError(f"capability names must be identifiers without a leading "
                             f"underscore, got {bad!r}")
        await self._slots.acquire(agent_id, label)
        try:
            connection = await self._connection(agent_id, compiled)
            run_id = connection.next_run_id()
            driver = RunDriver(run_id, host, connection.send, frozenset(capabilities),
                               max_bytes_in_flight=self.limits.max_bytes_in_flight)
            connection.drivers[run_id] = driver
            try:
                connection.send({"t": "run", "run": run_id, "source": compiled.source,
                                 "filename": compiled.filename, "event": event,
                                 "caps": list(capabilities)})
                connection.run_started()
                return await driver.wait()
            finally:
                connection.drivers.pop(run_id, None)
        finally:
            self._slots.release(agent_id)

    async def evict(self, agent_id: str) -> None:
        """Stop the agent's worker now; its next run starts a fresh one."""
        connection = self._workers.pop(agent_id, None)
        if connection is not None:
            await connection.close()
        self._slots.pump()

    async def _probe(self, agent_id: str, code: str) -> dict[str, Any]:
        """TESTS ONLY: run unrestricted ``code`` in the agent's confined worker.

        Needs ``Limits(unsafe_test_probe=True)``; the code sets ``result``. Returns
        ``{"value": ...}`` or ``{"error": "..."}``.
        """
        if not self.limits.unsafe_test_probe:
            raise RuntimeError("probes need Limits(unsafe_test_probe=True)")
        await self._slots.acquire(agent_id, None)
        try:
            connection = await self._connection(agent_id)
            assert isinstance(connection, ProcessConnection)
            return await connection.probe(code)
        finally:
            self._slots.release(agent_id)

    # -- slots ---------------------------------------------------------------------------

    def _stop(self, agent_id: str) -> None:
        connection = self._workers.pop(agent_id, None)
        if connection is not None:
            connection.kill(WorkerCrashedError(
                f"the worker for agent {agent_id!r} was evicted", rerun=True))

    # -- workers -------------------------------------------------------------------------

    async def _connection(self, agent_id: str, plan: CompiledPlan | None = None
                          ) -> Connection:
        connection = self._workers.get(agent_id)
        if connection is not None and not connection.exited() and not self._worn_out(
                connection):
            self._workers.move_to_end(agent_id)
            return connection
        if connection is not None:
            await self.evict(agent_id)
        starting = self._starting.get(agent_id)
        if starting is not None:
            return await asyncio.shield(starting)
        future: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        self._starting[agent_id] = future
        try:
            connection = await self._new_connection(agent_id, plan)
            future.set_result(connection)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._starting[agent_id]
        self._workers[agent_id] = connection
        self._trim()
        return connection

    async def _new_connection(self, agent_id: str, plan: CompiledPlan | None) -> Connection:
        if self.isolation == "inline":
            connection: Connection = InlineConnection(agent_id, self.limits)
        else:
            assert self._zygote is not None
            if not self._zygote.alive:  # the zygote died: start a new one, invisibly
                await self._zygote.close()
                self._zygote = ZygoteClient(self.limits)
                await self._zygote.start()
            taken = {c.uid for c in self._workers.values() if c.uid is not None}
            uid = uid_for_agent(agent_id, self.limits.uid_base, self.limits.uid_count, taken)
            spawned = await self._zygote.spawn(uid, plan)
            connection = ProcessConnection(agent_id, self.limits, spawned, uid)
            await connection.open()
        connection.on_dead = self._forget
        return connection

    def _forget(self, connection: Connection) -> None:
        if self._workers.get(connection.agent_id) is connection:
            del self._workers[connection.agent_id]
            self._slots.pump()  # a slot may have come free

    def _trim(self) -> None:
        """Stop idle workers beyond ``max_workers`` (never one that runs something)."""
        for agent_id in list(self._workers):
            if len(self._workers) <= self.max_workers:
                return
            if not self._slots.holds(agent_id) and not self._workers[agent_id].drivers:
                self._stop(agent_id)

    def _worn_out(self, connection: Connection) -> bool:
        """True when an idle worker is near its lifetime CPU budget (RLIMIT_CPU)."""
        if connection.pid is None or connection.drivers or not self.limits.rlimits:
            return False
        cpu = worker_cpu_seconds(connection.pid)
        return cpu is not None and cpu > self.limits.cpu_seconds * _CPU_RECYCLE_FRACTION

