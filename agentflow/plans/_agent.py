"""An agent's scope: its plans (immutable versions) and the instances that run them.

`Agent` sees and acts on its own plans and instances only: any id that belongs to
another agent is answered exactly as a missing one. `AgentInstance` is the engine's
`Instance` plus the plan and version it is pinned to.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from agentflow._durations import parse_duration, to_datetime
from agentflow._feed import Change
from agentflow._instance import Instance, instance_status, wait_ref
from agentflow._limits import check_statuses, encode_value, quota_error
from agentflow.capabilities import Capability
from agentflow.errors import (
    InstanceNotFoundError,
    InvalidArgumentError,
    LimitExceededError,
    PlanNotFoundError,
)
from agentflow.models import ACTIVE_STATUSES, InstanceStatus, StepRecord
from agentflow.plans._invalid import compile_checked, plan_filename
from agentflow.plans.dispatch import unwrap, wrap_workflow_binding
from agentflow.policy import default_actor
from agentflow.store import InstanceRow, PlanRow, ScopeQuota, ScopeQuotaRefused
from sandbox import ValidationReport, WorkerPool, validate

if TYPE_CHECKING:
    from agentflow._schedules import Schedule
    from agentflow.plans._flow import AgentFlow
    from agentflow.plans._schedules import AgentSchedules

PLAN_WORKFLOW = "agentflow.plan"
_PLAN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\Z")


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


class AgentInstanceStatus(InstanceStatus):
    """An instance's status plus the plan and version it runs (from the same read).

    ``waiting_for_worker`` is true while the instance is ``running`` but its run waits
    for a worker slot (every one of ``max_workers`` is busy; slots are given in arrival
    order). The process that runs it knows at once; it records a wait of a second or
    more in the store, so other processes show it too (a second or so late).
    """

    plan: str
    version: str
    waiting_for_worker: bool = False


def _agent_status(row: InstanceRow, pool: WorkerPool | None = None) -> AgentInstanceStatus:
    metadata, _ = unwrap_row(row)
    waiting = row.status == "running" and (
        (pool is not None and pool.waiting_since(row.id) is not None)
        or (row.slot_wait_since is not None and row.lease_until is not None
            and row.lease_until >= time.time()))
    return AgentInstanceStatus(**dict(instance_status(row)), plan=metadata["plan"],
                               version=metadata["version"], waiting_for_worker=waiting)


class AgentInstance(Instance):
    """An instance of an agent's plan: the engine `Instance` plus the plan it runs."""

    def __init__(self, agent: Agent, row: InstanceRow) -> None:
        super().__init__(agent.flow.engine, row.id, row.workflow)
        self._agent = agent
        metadata, _ = unwrap_row(row)
        self.plan: str = metadata["plan"]
        self.version: str = metadata["version"]

    async def status(self) -> AgentInstanceStatus:
        """The instance's status, with its plan, version and whether its run waits for
        a worker slot (`AgentInstanceStatus`)."""
        return _agent_status(await self._row(), self._agent.flow.pool)

    async def status_and_wait_ref(self) -> tuple[AgentInstanceStatus, str | None]:
        """The status and, when it waits for an event, a reference naming this very
        wait (see `send_event_to_wait`), both from one read of the store."""
        row = await self._row()
        return _agent_status(row, self._agent.flow.pool), wait_ref(row)

    async def restart(self, from_step: str | None = None, *, upgrade: bool = False,
                      version: str | None = None, by: str | None = None) -> None:
        """Run again from the top (or from a step). ``upgrade=True`` moves the instance
        to its plan's current version first, ``version=`` to that version of its plan
        (read it with `Agent.current_version` to check a version, then move to the very
        one checked); otherwise it keeps the version it started with. The restart is
        recorded with who made it (``by``, default ``"operator <login> via python"``).

        Raises:
            PlanNotFoundError: its plan has no such version.
            InvalidArgumentError: both ``upgrade`` and ``version``, or an unknown step.
        """
        if upgrade and version is not None:
            raise InvalidArgumentError("restart takes upgrade=True or a version, not both")
        if upgrade:
            version = (await self._agent.current_version(self.plan)).version
        elif version is not None:
            await self._agent.plan_source(self.plan, version)  # raises if there is none
        payload = None
        if version is not None:
            metadata, params = unwrap_row(await self._row())
            metadata = {**metadata, "version": version}
            payload = encode_value(
                wrap_workflow_binding(self._agent.flow.binding, metadata).envelope(params),
                what=f"params of instance {self.id!r}")
        await self._restart(from_step, payload=payload, version=version,
                            by=by or default_actor("python"))
        if version is not None:
            self.version = version


def unwrap_row(row: InstanceRow) -> tuple[dict[str, Any], Any]:
    """The metadata envelope and the params of a plan instance's stored row."""
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
        """The capabilities granted to this agent in this process."""
        return self._af.capabilities_of(self.id)

    @property
    def schedules(self) -> AgentSchedules:
        """This agent's schedules: its plans started on a cron expression or an
        interval (``await agent.schedules.create("digest", cron="0 7 * * *")``)."""
        from agentflow.plans._schedules import AgentSchedules

        return AgentSchedules(self)

    async def schedule(self, plan: str, **options: Any) -> Schedule:
        """``await agent.schedules.create(plan, ...)``: start ``plan`` on a cron
        expression or an interval (see `AgentSchedules.create`)."""
        return await self.schedules.create(plan, **options)

    # -- plans -----------------------------------------------------------------------
    def validate(self, source: str) -> ValidationReport:
        """Check a plan's source without storing it; never raises on any input.

        It knows this agent's grants: ``env.x`` for a capability not granted, or a
        method the capability does not have, is a finding (AF409) that names what is
        granted.
        """
        return validate(source, capabilities=self.granted_methods())

    def granted_methods(self) -> dict[str, frozenset[str] | None]:
        """Each granted capability's plan-callable methods (None: not declared)."""
        return {name: frozenset(cap.methods) or None
                for name, cap in self.capabilities.items()}

    async def submit_plan(self, name: str, source: str) -> PlanVersion:
        """Store a new immutable version of a plan and make it current. New instances
        run it; running instances keep the version they started with.

        Grants are not checked here (they live in each process, and the one that runs
        the plan may grant more): `validate` reports a capability this process did not
        grant, and at run time its use fails the step at once.

        Raises:
            PlanValidationError: the source does not pass validation (``.report`` has
                the diagnostics with line, column, code and a fix hint).
        """
        self._check_plan_name(name)
        version = version_of(source)
        # Raises PlanValidationError. Compiled under the name loading uses, so the first
        # run in this process finds it in the sandbox's compile cache.
        compile_checked(source, filename=plan_filename(name, version))
        row = await self._af.engine.store.put_plan_version(PlanRow(
            scope=self.id, name=name, version=version, source=source,
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

    async def current_version(self, name: str) -> PlanVersion:
        """The current version of a plan (what `start` runs and ``upgrade`` moves to).

        Raises:
            PlanNotFoundError: this agent has no plan of that name.
        """
        row = await self._af.engine.store.get_plan_version(self.id, name)
        if row is None:
            raise PlanNotFoundError(f"no plan named {name!r}; submit it first")
        return _plan_version(row)

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
            LimitExceededError: the agent has as many unfinished instances as
                ``Quotas.agent_active_instances`` allows, or as many stored ones as
                ``Quotas.agent_total_instances`` (nothing is created).
        """
        plan = await self.current_version(name)
        binding = wrap_workflow_binding(self._af.binding, {
            "agent_id": self.id, "plan": name, "version": plan.version})
        quotas = self._af.quotas
        try:
            # Counted in the transaction that writes the instance: two processes
            # starting this agent's instances at once cannot both pass the check.
            inst = await binding.create(params=params, id=id, quota=ScopeQuota(
                self.id, quotas.agent_active_instances, quotas.agent_total_instances,
                tuple(sorted(ACTIVE_STATUSES | {"paused"}))))
        except ScopeQuotaRefused as refused:
            raise self._quota_refusal(refused.which, refused.count - 1) from None
        return await self.get(inst.id)

    async def check_instance_quotas(self, pending: int = 0) -> None:
        """Refuse (`LimitExceededError`) if this agent may not have one more instance
        (``Quotas.agent_active_instances``, ``Quotas.agent_total_instances``) besides
        ``pending`` ones about to be created; a schedule's fire asks this too."""
        await self._check_instance_quotas(pending)

    async def _check_instance_quotas(self, pending: int = 0) -> None:
        quotas, store = self._af.quotas, self._af.engine.store
        active = await store.count_instances(scope=self.id, statuses=sorted(
            ACTIVE_STATUSES | {"paused"})) + pending
        if active >= quotas.agent_active_instances:
            raise self._quota_refusal("active", active)
        total = await store.count_instances(scope=self.id) + pending
        if total >= quotas.agent_total_instances:
            raise self._quota_refusal("total", total)

    def _quota_refusal(self, which: str, held: int) -> LimitExceededError:
        quotas = self._af.quotas
        if which == "active":
            return quota_error("agent_active_instances", quotas.agent_active_instances,
                               f"agent {self.id!r} has {held:,} unfinished instances",
                               "Wait for some to finish, or terminate ones you no longer "
                               "need.")
        return quota_error("agent_total_instances", quotas.agent_total_instances,
                           f"agent {self.id!r} has {held:,} instances in the store",
                           "Delete finished instances you no longer need.")

    async def get(self, instance_id: str) -> AgentInstance:
        """This agent's instance with that id; another agent's is not found."""
        row = await self._af.engine.store.get_instance(instance_id) if isinstance(
            instance_id, str) else None
        if row is None or row.scope != self.id or row.workflow != PLAN_WORKFLOW:
            raise InstanceNotFoundError(f"no instance with id {instance_id!r}")
        return AgentInstance(self, row)

    async def instances(self, status: str | list[str] | None = None, *, limit: int = 100,
                        offset: int = 0) -> list[AgentInstanceStatus]:
        """This agent's instances, newest first, optionally of some statuses; each
        status also names the plan and version the instance runs."""
        statuses = check_statuses(status)
        rows = await self._af.engine.store.list_instances(
            workflows=[PLAN_WORKFLOW], statuses=statuses, scopes=[self.id], limit=limit,
            offset=offset)
        return [_agent_status(r, self._af.pool) for r in rows]

    async def status(self, instance_id: str) -> AgentInstanceStatus:
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
        """This agent's instances that wait for an event, with its type and step: one
        entry per wait (a plan that gathers two waits is listed twice)."""
        pending = []
        rows = await self._af.engine.store.list_instances(
            workflows=[PLAN_WORKFLOW], statuses=["waiting"], scopes=[self.id], limit=1000)
        for row in rows:
            for w in instance_status(row).waits:
                if w.kind == "event" and w.type:
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
                      upgrade: bool = False, version: str | None = None,
                      by: str | None = None) -> None:
        """See `AgentInstance.restart`."""
        await (await self.get(instance_id)).restart(from_step, upgrade=upgrade,
                                                    version=version, by=by)

    @staticmethod
    def _check_plan_name(name: Any) -> None:
        if not isinstance(name, str) or not _PLAN_NAME.match(name):
            raise InvalidArgumentError(f"plan name {name!r} is invalid: use 1 to 100 of "
                                       "letters, digits, '_', '.' and '-'")
