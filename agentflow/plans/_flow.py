"""`AgentFlow`: the agent layer's facade over one database, and ``--app`` loading.

`AgentFlow` joins the durable engine and the sandbox. An agent submits the source of a
``run(event, step)`` plan; it is validated, stored as an immutable version (the hash of
its source) and started as an engine instance of the one dynamic workflow
``agentflow.plan``, whose payload carries the metadata envelope ``{agent_id, plan,
version}``. On every run the dynamic entrypoint unwraps it, loads that exact version
(cached, compiled) and runs it in the agent's confined worker; each ``step.*`` the plan
makes comes back to the host and is driven by the engine's journal, so replay rules are
the same as for trusted workflows.

``--app module:attribute`` (`load_app`, `adopt_apps`): a host's own workflows and
capability grants, loaded into a process that runs agentflow (``agentflow worker``,
``agentflow-mcp``). Grants are process configuration, never stored: every process that
runs an agent's plans must be given the same grants, or a plan's capability calls fail
there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Collection, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from agentflow._engine import Engine
from agentflow._feed import Change
from agentflow._instance import WorkflowBinding
from agentflow._limits import Quotas
from agentflow.capabilities import Capability
from agentflow.clock import Clock
from agentflow.errors import InvalidArgumentError, PlanNotFoundError, UsageError
from agentflow.models import ACTIVE_STATUSES
from agentflow.plans._agent import PLAN_WORKFLOW, Agent
from agentflow.plans._invalid import compile_checked, plan_filename
from agentflow.plans._rate import StepRate
from agentflow.plans._runner import _PlanRunner
from agentflow.plans._schedules import plan_payload_builder
from agentflow.plans.dispatch import create_dynamic_entrypoint
from sandbox import CompiledPlan, Limits, WorkerPool

if TYPE_CHECKING:
    from agentflow.plans._sync import SyncAgentFlow

_AGENT_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,100}\Z")
_SLOT_WAIT_RECORD_SECONDS = 1.0

log = logging.getLogger("agentflow")


class AgentFlow:
    """Agents author, start and steer durable plans on one database.

    Example:
        af = AgentFlow("sqlite:///agentflow.db")
        async with af:
            agent = af.agent("agent-42", capabilities={"kv": KVCapability()})
            await agent.submit_plan("digest", source)
            inst = await agent.start("digest", params={"url": "..."})

    Args:
        url: the database (see `Engine`).
        clock: workflow time (`ManualClock` in tests).
        isolation: ``"process"`` runs each agent's plans in a confined worker process;
            ``"inline"`` runs them in this process (validation and RestrictedPython
            only: **not a security boundary**, for trusted code, tests and notebooks).
        max_workers: how many agents' workers stay alive at once. Only idle workers
            are evicted (least recently used first, rebuilt on their next run,
            invisibly to the plan); when all are busy, further agents' runs wait for a
            slot in arrival order (``waiting_for_worker`` in `Agent.status`).
        run_scheduler: ``"on_demand"`` (the default) runs due plans once this process
            asks for progress (starts, sends an event to, resumes, restarts or waits
            for an instance), so a script that only lists or reads claims nothing;
            True runs them from the start (a worker, a server); False never (another
            process's worker runs the plans). See `Engine`.
        quotas: what each agent may use (`Quotas`; the defaults when None): bytes in
            flight per run, journal bytes per instance, kv bytes and keys, instances,
            and a step rate. ``limits.max_bytes_in_flight`` is set from it.
        engine_options: more keyword arguments for `Engine`.
    """

    def __init__(self, url: str | None = None, *, clock: Clock | None = None,
                 isolation: Literal["process", "inline"] = "process", max_workers: int = 64,
                 run_scheduler: bool | Literal["on_demand"] = "on_demand",
                 limits: Limits | None = None,
                 quotas: Quotas | None = None,
                 engine_options: Mapping[str, Any] | None = None,
                 compiled_cache_size: int = 256) -> None:
        self.quotas = quotas if quotas is not None else Quotas()
        options = {"max_journal_bytes": self.quotas.instance_journal_bytes,
                   **dict(engine_options or {})}
        self.engine = Engine(url, clock=clock, run_scheduler=run_scheduler, **options)
        self.engine.register(PLAN_WORKFLOW, create_dynamic_entrypoint(self._load_runner))
        self.isolation = isolation
        limits = dataclasses.replace(limits if limits is not None else Limits(),
                                     max_bytes_in_flight=self.quotas.run_bytes_in_flight)
        self.pool = WorkerPool(isolation=isolation, max_workers=max_workers, limits=limits)
        self._step_rates: dict[str, StepRate] = {}
        self._grants: dict[str, dict[str, Capability]] = {}
        self._compiled: OrderedDict[tuple[str, str, str], CompiledPlan] = OrderedDict()
        self._compiled_cache_size = compiled_cache_size
        self._binding = self.engine.binding(PLAN_WORKFLOW)
        self.engine.schedules.payload_builder(PLAN_WORKFLOW, plan_payload_builder(self))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slot_waits: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.pool.start()
        await self.engine.start()
        self._loop = asyncio.get_running_loop()
        self._slot_waits = self._loop.create_task(self._record_slot_waits(),
                                                  name="agentflow-slot-waits")

    async def close(self) -> None:
        self._loop = None
        if self._slot_waits is not None:
            self._slot_waits.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._slot_waits
            self._slot_waits = None
        await self.engine.close()
        await self.pool.close()

    async def _record_slot_waits(self) -> None:
        """Write down which runs have waited a while for a worker slot, so that every
        process shows the wait (``waiting_for_worker``), not only this one.

        Once a second, in one transaction, and only for waits of a second or more: a
        burst of starts that a slot serves at once writes nothing.
        """
        loop, engine = asyncio.get_running_loop(), self.engine
        recorded: set[str] = set()
        while True:
            await asyncio.sleep(_SLOT_WAIT_RECORD_SECONDS)
            now, wall = loop.time(), time.time()
            waiting = {label: wall - (now - since) for _, label, since in self.pool.waiting
                       if label is not None and now - since >= _SLOT_WAIT_RECORD_SECONDS}
            new = {i: since for i, since in waiting.items() if i not in recorded}
            granted = [i for i in recorded if i not in waiting]
            if not new and not granted:
                continue
            try:
                await engine.store.mark_slot_waits(engine.owner, new, granted)
            except Exception:  # shown a second late, or until the next claim
                log.warning("could not record the runs waiting for a worker slot",
                            exc_info=True)
                continue
            recorded = set(waiting)

    @property
    def binding(self) -> WorkflowBinding:
        """The binding of ``agentflow.plan``, the one dynamic workflow that runs every
        agent's plans (wrap it per agent with `wrap_workflow_binding`)."""
        return self._binding

    @property
    def grants(self) -> dict[str, dict[str, Capability]]:
        """Every agent's capability grants in this process: agent id to name to facade
        (a copy; grant with `agent`)."""
        return {agent_id: dict(caps) for agent_id, caps in self._grants.items()}

    def step_rate(self, agent_id: str) -> StepRate:
        """The agent's step-rate bucket in this process (`Quotas.agent_steps_per_second`)."""
        rate = self._step_rates.get(agent_id)
        if rate is None:
            rate = self._step_rates[agent_id] = StepRate(self.quotas.agent_steps_per_second,
                                                         self.quotas.agent_step_burst)
        return rate

    async def usage(self, agent_id: str) -> dict[str, dict[str, float]]:
        """What the agent uses of each quota it has a count for: ``{quota: {"used": n,
        "limit": m}}`` (instances and kv from the store; the rest are per run or per
        instance and show in their errors)."""
        store, q = self.engine.store, self.quotas
        active = await store.count_instances(scope=agent_id, statuses=sorted(
            ACTIVE_STATUSES | {"paused"}))
        total = await store.count_instances(scope=agent_id)
        keys, size = await store.kv_usage(agent_id)
        return {"agent_active_instances": {"used": active, "limit": q.agent_active_instances},
                "agent_total_instances": {"used": total, "limit": q.agent_total_instances},
                "agent_kv_keys": {"used": keys, "limit": q.agent_kv_keys},
                "agent_kv_bytes": {"used": size, "limit": q.agent_kv_bytes}}

    def capabilities_of(self, agent_id: str) -> dict[str, Capability]:
        """The capabilities granted to one agent in this process (a copy; none: {})."""
        return dict(self._grants.get(agent_id, {}))

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop this AgentFlow runs on while started, else None. Sync code in
        other threads submits work to it (see `in_thread` and the sync tool adapters)."""
        return self._loop

    async def _close_loop(self) -> None:
        """Close, then end what is left on the loop, as `asyncio.run` does."""
        await self.close()
        current = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_asyncgens()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[SyncAgentFlow]:
        """Run this AgentFlow on an event loop in a background thread, for sync code.

        Yields a `SyncAgentFlow`: the same API with every method synchronous
        (``af.agent("a1").start("digest", params)`` returns an instance whose ``wait()``
        blocks). Inside the block the engine drives instances, and the sync tool
        adapters and `agentflow.tools.author_plan` (with a sync OpenAI or Anthropic
        client) take its agents. Leaving the block closes it (running steps finish
        first).

        Example:
            with AgentFlow("sqlite:///agentflow.db").in_thread() as af:
                agent = af.agent("a1")
                agent.submit_plan("digest", source)
                print(agent.start("digest", {"n": 2}).wait(timeout=30).output)
        """
        from agentflow.plans._sync import SyncAgentFlow

        if self._loop is not None:
            raise UsageError("this AgentFlow is already started; in_thread() starts it")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="agentflow", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result()
            try:
                yield SyncAgentFlow(self, loop)
            finally:
                asyncio.run_coroutine_threadsafe(self._close_loop(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    async def __aenter__(self) -> AgentFlow:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def subscribe(self, *, after: int | None = None, agent: str | None = None,
                  instance_ids: Collection[str] | None = None,
                  poll: float = 0.1) -> AsyncIterator[Change]:
        """Changes to instances on this database, in commit order, from every process
        (see `Engine.subscribe`); ``agent`` keeps one agent's instances only.

        Example:
            async for change in flow.subscribe(after=cursor):
                cursor = change.seq          # resume later with after=cursor
        """
        return self.engine.subscribe(after=after, instance_ids=instance_ids,
                                     agents=None if agent is None else [agent], poll=poll)

    def agent(self, agent_id: str, capabilities: Mapping[str, Capability] | None = None
              ) -> Agent:
        """The scope of one agent. ``capabilities`` grants it facades by name (the
        default is none at all); calling again with capabilities replaces the grant.

        Grants live in this process: every process that runs an agent's plans (a
        worker, an MCP server) must grant the same capabilities.
        """
        if not isinstance(agent_id, str) or not _AGENT_ID.match(agent_id):
            raise InvalidArgumentError(f"agent id {agent_id!r} is invalid: use 1 to 100 of "
                                       "letters, digits and _ . @ -")
        if capabilities is not None:
            for name, cap in capabilities.items():
                if not isinstance(cap, Capability):
                    raise InvalidArgumentError(f"capability {name!r} must be a Capability "
                                               f"object, got {type(cap).__name__}")
            self._grants[agent_id] = dict(capabilities)
        return Agent(self, agent_id)

    # -- the dynamic entrypoint's loader ------------------------------------------
    def _load_runner(self, metadata: dict[str, Any]) -> Any:
        agent_id, name, version = (metadata.get("agent_id"), metadata.get("plan"),
                                   metadata.get("version"))
        if not all(isinstance(v, str) for v in (agent_id, name, version)):
            raise InvalidArgumentError(f"malformed plan metadata {metadata!r}")
        return _PlanRunner(self, str(agent_id), str(name), str(version))

    async def compiled(self, agent_id: str, name: str, version: str) -> CompiledPlan:
        """One agent's plan version, compiled, for a run.

        Two caches, on purpose, keyed differently: this one maps a version's id
        ``(agent, plan, version)`` to its compiled plan and saves the store read that
        finds the source; the sandbox's (``compile_plan``, keyed by source and filename)
        saves the compilation, and is shared by every `AgentFlow` in the process and
        by `Agent.submit_plan`, which compiles under the same filename, so a version
        submitted here is compiled once in this process. A confined worker compiles
        once more in its own process: it is sent the source text, never code.

        Raises:
            PlanNotFoundError: no such version is stored.
            PlanValidationError: the stored source no longer validates.
        """
        key = (agent_id, name, version)
        plan = self._compiled.get(key)
        if plan is None:
            row = await self.engine.store.get_plan_version(agent_id, name, version)
            if row is None:
                raise PlanNotFoundError(f"plan {name!r} version {version} of agent "
                                        f"{agent_id!r} is not in the store")
            plan = compile_checked(row.source, filename=plan_filename(name, version))
            self._compiled[key] = plan
            while len(self._compiled) > self._compiled_cache_size:
                self._compiled.popitem(last=False)
        self._compiled.move_to_end(key)
        return plan



def load_app(spec: str) -> Engine | AgentFlow:
    """Import ``module:attribute`` and return the `Engine` or `AgentFlow` it names."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidArgumentError(f"--app {spec!r} must look like package.module:engine")
    if os.getcwd() not in sys.path:  # like uvicorn: apps in the working directory import
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgumentError(f"--app {spec!r}: cannot import {module_name!r}: {exc}"
                                   ) from None
    app = getattr(module, attr, None)
    if app is None:
        raise InvalidArgumentError(f"--app {spec!r}: module {module_name!r} has no "
                                   f"attribute {attr!r}")
    if not isinstance(app, Engine | AgentFlow):
        raise InvalidArgumentError(f"--app {spec!r}: {attr!r} is neither an agentflow Engine "
                                   "nor an AgentFlow")
    return app


def adopt_apps(flow: AgentFlow, apps: Iterable[Engine | AgentFlow]) -> None:
    """Give ``flow`` the apps' workflows, and an `AgentFlow`'s agents' grants."""
    for app in apps:
        if isinstance(app, AgentFlow):  # its agents' capability grants apply here too
            for agent_id, capabilities in app.grants.items():
                flow.agent(agent_id, capabilities)
            app = app.engine
        for name in app.workflows:
            if name not in flow.engine.workflows:
                flow.engine.register(name, app.workflow_function(name))
