"""Agent plans: per-agent scopes, immutable plan versions, dispatch into the sandbox.

`AgentFlow` joins the durable engine and the sandbox. An agent submits the source of a
``run(event, step)`` plan; it is validated, stored as an immutable version (the hash of
its source) and started as an engine instance of the one dynamic workflow
``agentflow.plan``, whose payload carries the metadata envelope ``{agent_id, plan,
version}``. On every run the dynamic entrypoint unwraps it, loads that exact version
(cached, compiled) and runs it in the agent's confined worker; each ``step.*`` the plan
makes comes back to the host and is driven by the engine's journal, so replay rules are
the same as for trusted workflows.

Isolation between agents: an `Agent` sees and acts on its own plans and instances only.
Any id that belongs to another agent is answered exactly as a missing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Collection, Iterator, Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agentflow._durations import parse_duration, to_datetime
from agentflow._engine import Engine
from agentflow._feed import Change
from agentflow._instance import Instance, instance_status
from agentflow._limits import check_statuses, encode_value
from agentflow.capabilities import Capability, CapabilityContext, CapabilityError
from agentflow.clock import Clock
from agentflow.dispatch import create_dynamic_entrypoint, unwrap, wrap_workflow_binding
from agentflow.errors import (
    InstanceNotFoundError,
    InvalidArgumentError,
    NonRetryableError,
    NotFoundError,
    StepError,
    UsageError,
    WorkflowTimeoutError,
    rebuild_error,
)
from agentflow.models import Event, InstanceStatus, StepRecord
from agentflow.store import InstanceRow, PlanRow
from sandbox import (
    CompiledPlan,
    Diagnostic,
    PlanRuntimeError,
    PlanValidationError,
    RemoteError,
    ValidationReport,
    WorkerPool,
    compile_plan,
    validate,
)

__all__ = [
    "PLAN_WORKFLOW",
    "Agent",
    "AgentFlow",
    "AgentInstance",
    "Diagnostic",
    "PendingEvent",
    "PlanNotFoundError",
    "PlanValidationError",
    "PlanVersion",
    "ValidationReport",
]

PLAN_WORKFLOW = "agentflow.plan"
_AGENT_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,100}\Z")
_PLAN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")


class PlanNotFoundError(NotFoundError):
    """No plan of that name (or version) exists for this agent."""


class PlanVersion(BaseModel):
    """An immutable, stored version of a plan: ``version`` is its source's hash."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    created_at: datetime
    created_by: str
    current: bool = True


class PendingEvent(BaseModel):
    """An instance of this agent that waits for an event."""

    model_config = ConfigDict(frozen=True)

    instance_id: str
    plan: str
    type: str
    step: str
    deadline: datetime


def _plan_version(row: PlanRow) -> PlanVersion:
    return PlanVersion(name=row.name, version=row.version, created_at=to_datetime(row.created_at),
                       created_by=row.created_by, current=row.current)


def version_of(source: str) -> str:
    """A plan version id: the first 16 hex digits of the source's SHA-256."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16]


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
        max_workers: how many agents' workers stay alive at once (least recently used
            are evicted and rebuilt on their next step, invisibly to the plan).
        run_scheduler: False for a process that only authors and steers (another
            process's worker runs the plans).
        engine_options: more keyword arguments for `Engine`.
    """

    def __init__(self, url: str | None = None, *, clock: Clock | None = None,
                 isolation: Literal["process", "inline"] = "process", max_workers: int = 64,
                 run_scheduler: bool = True, limits: Any = None,
                 engine_options: Mapping[str, Any] | None = None,
                 compiled_cache_size: int = 256) -> None:
        self.engine = Engine(url, clock=clock, run_scheduler=run_scheduler,
                             **dict(engine_options or {}))
        self.engine.register(PLAN_WORKFLOW, create_dynamic_entrypoint(self._load_runner))
        self.isolation = isolation
        pool_options: dict[str, Any] = {"isolation": isolation, "max_workers": max_workers}
        if limits is not None:
            pool_options["limits"] = limits
        self.pool = WorkerPool(**pool_options)
        self._grants: dict[str, dict[str, Capability]] = {}
        self._compiled: OrderedDict[tuple[str, str, str], CompiledPlan] = OrderedDict()
        self._compiled_cache_size = compiled_cache_size
        self._binding = self.engine.binding(PLAN_WORKFLOW)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        await self.pool.start()
        await self.engine.start()
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        self._loop = None
        await self.engine.close()
        await self.pool.close()

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
    def in_thread(self) -> Iterator[AgentFlow]:
        """Run this AgentFlow on an event loop in a background thread, for sync code.

        Inside the block the engine drives instances, and the sync tool adapters and
        `agentflow.tools.author_plan` (with a sync OpenAI or Anthropic client) reach the
        agents through it. Leaving the block closes it (running steps finish first).

        Example:
            with AgentFlow("sqlite:///agentflow.db").in_thread() as af:
                result = author_plan(openai.OpenAI(), "gpt-4.1", af.agent("a1"), goal)
        """
        if self._loop is not None:
            raise UsageError("this AgentFlow is already started; in_thread() starts it")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="agentflow", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result()
            try:
                yield self
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
                cursor = change.seq
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
        key = (agent_id, name, version)
        plan = self._compiled.get(key)
        if plan is None:
            row = await self.engine.store.get_plan_version(agent_id, name, version)
            if row is None:
                raise PlanNotFoundError(f"plan {name!r} version {version} of agent "
                                        f"{agent_id!r} is not in the store")
            plan = compile_plan(row.source, filename=f"<plan {name}@{version}>")
            self._compiled[key] = plan
            while len(self._compiled) > self._compiled_cache_size:
                self._compiled.popitem(last=False)
        self._compiled.move_to_end(key)
        return plan


class _PlanRunner:
    """Runs one plan version for one agent, in its worker, against the engine's step."""

    def __init__(self, af: AgentFlow, agent_id: str, name: str, version: str) -> None:
        self.af, self.agent_id, self.name, self.version = af, agent_id, name, version

    async def run(self, event: Event, step: Any) -> Any:
        plan = await self.af.compiled(self.agent_id, self.name, self.version)
        grants = self.af._grants.get(self.agent_id, {})
        host = _PlanHost(self.af, self.agent_id, event.instance_id, step, grants)
        raw_event = {"payload": event.payload, "timestamp": event.timestamp.isoformat(),
                     "instance_id": event.instance_id}
        try:
            return await self.af.pool.run_plan(self.agent_id, plan, raw_event, host,
                                               capabilities=sorted(grants))
        except PlanRuntimeError as exc:
            raise rebuild_error({"name": exc.error_name, "message": exc.message}) from None


class _PlanHost:
    """The host side of a plan's calls: steps go to the engine, capabilities to grants."""

    def __init__(self, af: AgentFlow, agent_id: str, instance_id: str, step: Any,
                 grants: Mapping[str, Capability]) -> None:
        self.af, self.agent_id, self.instance_id = af, agent_id, instance_id
        self.engine_step, self.grants = step, grants

    async def step(self, op: str, args: dict[str, Any], run_body: Any) -> Any:
        """A plan's ``step.*`` call, driven by the engine's journal."""
        return await _host_step(self, op, args, run_body)

    async def capability(self, name: str, method: str, args: list[Any],
                         kwargs: dict[str, Any]) -> Any:
        grant = self.grants.get(name)
        if grant is None:
            raise CapabilityError(f"capability {name!r} is not granted to this agent")
        context = CapabilityContext(agent_id=self.agent_id, instance_id=self.instance_id,
                                    store=self.af.engine.store, now=self.af.engine.clock.now())
        return await grant.call(method, list(args), dict(kwargs), context)


async def _host_step(host: _PlanHost, op: str, args: dict[str, Any], run_body: Any) -> Any:
    step = host.engine_step
    name = args.get("name")
    if op == "do":
        async def body() -> Any:
            try:
                return await run_body()
            except RemoteError as exc:
                if exc.error_name == "NonRetryableError":
                    raise NonRetryableError(exc.message) from None
                if exc.error_name == "WorkflowTimeoutError":
                    raise WorkflowTimeoutError(exc.message) from None
                # A capability's refusal (a denied host, a reply over its cap, an HTTP
                # 4xx) is the same on every attempt; its transient failures were retried
                # inside the capability, and end in other errors.
                raise StepError(exc.message, error_name=exc.error_name, step=name,
                                retryable=exc.error_name != "CapabilityError") from None
        return await step.do(name, body, retries=args.get("retries"),
                             timeout=args.get("timeout"))
    if op == "sleep":
        return await step.sleep(name, args.get("duration"))
    if op == "sleep_until":
        when = args.get("when")
        if isinstance(when, str):
            try:
                when = datetime.fromisoformat(when)
            except ValueError:
                raise InvalidArgumentError(f"sleep_until {name!r}: {when!r} is not an ISO "
                                           "date-time") from None
        return await step.sleep_until(name, when)
    if op == "wait_for_event":
        return await step.wait_for_event(name, type=args.get("type"),
                                         timeout=args.get("timeout", "24 hours"))
    if op in ("now", "random", "uuid"):
        return await getattr(step, op)()
    raise InvalidArgumentError(f"unknown step operation {op!r}")


class AgentInstance(Instance):
    """An instance of an agent's plan: the engine `Instance` plus the plan it runs."""

    def __init__(self, agent: Agent, row: InstanceRow) -> None:
        super().__init__(agent._af.engine, row.id, row.workflow)
        self._agent = agent
        metadata, _ = unwrap_row(row)
        self.plan: str = metadata["plan"]
        self.version: str = metadata["version"]

    async def restart(self, from_step: str | None = None, *,
                      upgrade: bool = False) -> None:
        """Run again from the top (or from a step). ``upgrade=True`` moves the instance
        to its plan's current version first; otherwise it keeps the version it started
        with."""
        version = (await self._agent._current(self.plan)).version if upgrade else None
        await self._restart_on(version, from_step)

    async def _restart_on(self, version: str | None, from_step: str | None) -> None:
        """Restart, moved to ``version`` of its plan (None: keep the one it runs)."""
        payload = None
        if version is not None:
            row = await self._row()
            metadata, params = unwrap_row(row)
            metadata = {**metadata, "version": version}
            payload = encode_value(
                wrap_workflow_binding(self._agent._af._binding, metadata).envelope(params),
                what=f"params of instance {self.id!r}")
            self.version = version
        await self._restart(from_step, payload=payload)


def unwrap_row(row: InstanceRow) -> tuple[dict[str, Any], Any]:
    return unwrap(json.loads(row.payload))


class Agent:
    """One agent's view: its own plans and instances, nothing else."""

    def __init__(self, af: AgentFlow, agent_id: str) -> None:
        self._af = af
        self.id = agent_id

    def __repr__(self) -> str:
        return f"Agent({self.id!r})"

    @property
    def flow(self) -> AgentFlow:
        """The AgentFlow this agent belongs to."""
        return self._af

    @property
    def capabilities(self) -> dict[str, Capability]:
        return dict(self._af._grants.get(self.id, {}))

    # -- plans -----------------------------------------------------------------------
    def validate(self, source: str) -> ValidationReport:
        """Check a plan's source without storing it; never raises on any input."""
        return validate(source)

    async def submit_plan(self, name: str, source: str) -> PlanVersion:
        """Store a new immutable version of a plan and make it current. New instances
        run it; running instances keep the version they started with.

        Raises:
            PlanValidationError: the source does not pass validation (``.report`` has
                the diagnostics with line, column, code and a fix hint).
        """
        self._check_plan_name(name)
        compile_plan(source, filename=f"<plan {name}>")  # raises PlanValidationError
        row = await self._af.engine.store.put_plan_version(PlanRow(
            scope=self.id, name=name, version=version_of(source), source=source,
            created_at=self._af.engine.clock.now(), created_by=self.id, current=True))
        return _plan_version(row)

    async def plans(self) -> list[PlanVersion]:
        """The current version of each of this agent's plans."""
        return [_plan_version(r) for r in await self._af.engine.store.list_plans(self.id)]

    async def plan_versions(self, name: str) -> list[PlanVersion]:
        rows = await self._af.engine.store.list_plan_versions(self.id, name)
        if not rows:
            raise PlanNotFoundError(f"no plan named {name!r}")
        return [_plan_version(r) for r in rows]

    async def plan_source(self, name: str, version: str | None = None) -> str:
        row = await self._af.engine.store.get_plan_version(self.id, name, version)
        if row is None:
            raise PlanNotFoundError(f"no plan named {name!r}" + (
                f" with version {version!r}" if version else ""))
        return row.source

    async def _current(self, name: str) -> PlanRow:
        row = await self._af.engine.store.get_plan_version(self.id, name)
        if row is None:
            raise PlanNotFoundError(f"no plan named {name!r}; submit it first")
        return row

    # -- instances -------------------------------------------------------------------
    async def start(self, name: str, params: Any = None, *, id: str | None = None
                    ) -> AgentInstance:
        """Start an instance of the plan's current version (it stays pinned to it).

        ``id`` is optional; a generated one is a random UUID. Instance ids are unique
        in the whole store, so an explicit id that is taken (by this agent or any
        other) is refused with the same error either way; nothing else about the other
        instance is revealed. Let agentflow generate ids where ids must not be guessed.

        Raises:
            PlanNotFoundError: this agent has no plan of that name.
            InvalidArgumentError: a malformed or taken id, or params that are not JSON.
        """
        plan = await self._current(name)
        binding = wrap_workflow_binding(self._af._binding, {
            "agent_id": self.id, "plan": name, "version": plan.version})
        inst = await binding.create(params=params, id=id)
        return await self.get(inst.id)

    async def get(self, instance_id: str) -> AgentInstance:
        """This agent's instance with that id; another agent's is not found."""
        row = await self._af.engine.store.get_instance(instance_id) if isinstance(
            instance_id, str) else None
        if row is None or row.scope != self.id or row.workflow != PLAN_WORKFLOW:
            raise InstanceNotFoundError(f"no instance with id {instance_id!r}")
        return AgentInstance(self, row)

    async def instances(self, status: str | list[str] | None = None, *, limit: int = 100,
                        offset: int = 0) -> list[InstanceStatus]:
        """This agent's instances, newest first, optionally of some statuses."""
        statuses = check_statuses(status)
        rows = await self._af.engine.store.list_instances(
            workflows=[PLAN_WORKFLOW], statuses=statuses, scopes=[self.id], limit=limit,
            offset=offset)
        return [instance_status(r) for r in rows]

    async def status(self, instance_id: str) -> InstanceStatus:
        return await (await self.get(instance_id)).status()

    async def wait(self, instance_id: str, timeout: Any = None) -> InstanceStatus:
        inst = await self.get(instance_id)
        return await inst.wait(timeout if timeout is None else parse_duration(timeout))

    async def history(self, instance_id: str) -> list[StepRecord]:
        return await (await self.get(instance_id)).history()

    async def send_event(self, instance_id: str, type: str, payload: Any = None) -> None:
        """Send an event to one of this agent's instances (host code: any type)."""
        await (await self.get(instance_id)).send_event(type, payload)

    async def pending_events(self) -> list[PendingEvent]:
        """This agent's instances that wait for an event, with its type and step."""
        pending = []
        rows = await self._af.engine.store.list_instances(
            workflows=[PLAN_WORKFLOW], statuses=["waiting"], scopes=[self.id], limit=1000)
        for row in rows:
            status = instance_status(row)
            w = status.waiting_on
            if w is not None and w.kind == "event" and w.type:
                metadata, _ = unwrap_row(row)
                pending.append(PendingEvent(instance_id=row.id, plan=metadata["plan"],
                                            type=w.type, step=w.step, deadline=w.until))
        return pending

    def subscribe(self, *, after: int | None = None, poll: float = 0.1
                  ) -> AsyncIterator[Change]:
        """Changes to this agent's instances only (see `AgentFlow.subscribe`)."""
        return self._af.subscribe(after=after, agent=self.id, poll=poll)

    async def pause(self, instance_id: str) -> None:
        await (await self.get(instance_id)).pause()

    async def resume(self, instance_id: str) -> None:
        await (await self.get(instance_id)).resume()

    async def terminate(self, instance_id: str) -> None:
        await (await self.get(instance_id)).terminate()

    async def restart(self, instance_id: str, from_step: str | None = None, *,
                      upgrade: bool = False) -> None:
        await (await self.get(instance_id)).restart(from_step, upgrade=upgrade)

    @staticmethod
    def _check_plan_name(name: Any) -> None:
        if not isinstance(name, str) or not _PLAN_NAME.match(name):
            raise InvalidArgumentError(f"plan name {name!r} is invalid: use 1 to 100 of "
                                       "letters, digits, '_', '.' and '-'")
