"""An agent's schedules: its plans, started on a cron expression or an interval.

The engine's `agentflow._schedules.Schedules` does the firing; this is the agent's
scoped view of it. A schedule of an agent lives in the agent's scope (another agent's is
"not found"), starts the plan's *current* version at each fire (a new `submit_plan`
applies from the next fire on), and the instances it starts are the agent's like any
other, so the quotas on an agent's instances apply to them.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agentflow._limits import encode_value
from agentflow._schedules import Catchup, Overlap, Schedule, Schedules
from agentflow.plans.dispatch import wrap_workflow_binding
from agentflow.store import ScheduleRow

if TYPE_CHECKING:
    from agentflow.plans import Agent, AgentFlow

__all__ = ["AgentSchedules", "plan_payload_builder"]


def plan_payload_builder(af: AgentFlow) -> Any:
    """The payload of a plan schedule's fire: the envelope of the plan's current version
    around the schedule's params."""
    from agentflow.errors import PlanNotFoundError

    async def build(row: ScheduleRow, spec: dict[str, Any], pending: int) -> str:
        # The agent's quotas apply, counting the fires of this pass not yet stored.
        await af.agent(row.scope).check_instance_quotas(pending)
        plan = await af.engine.store.get_plan_version(row.scope, spec["plan"])
        if plan is None:
            raise PlanNotFoundError(f"agent {row.scope!r} has no plan {spec['plan']!r}")
        binding = wrap_workflow_binding(af.binding, {
            "agent_id": row.scope, "plan": spec["plan"], "version": plan.version})
        return encode_value(binding.envelope(spec.get("params")),
                            what=f"params of schedule {row.name!r}")
    return build


class AgentSchedules:
    """``agent.schedules``: create, list, pause, resume and delete this agent's
    schedules. Names are per agent."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    @property
    def _engine_schedules(self) -> Schedules:
        return self._agent.flow.engine.schedules

    async def create(self, plan: str, *, name: str | None = None, cron: str | None = None,
                     every: Any = None, timezone: str = "UTC", start: Any = None,
                     end: Any = None, params: Any = None, overlap: Overlap = "skip",
                     catchup: Catchup = "latest", replace: bool = False) -> Schedule:
        """Start plan ``plan`` on a schedule (see `agentflow._schedules.Schedules.create`
        for every argument); ``name`` defaults to the plan's name.

        Raises:
            PlanNotFoundError: this agent has no plan of that name.
            InvalidArgumentError: a bad expression, zone, duration, policy or name, or
                the name is taken (without ``replace``).
        """
        from agentflow.errors import PlanNotFoundError
        from agentflow.plans._agent import PLAN_WORKFLOW

        store = self._agent.flow.engine.store
        if await store.get_plan_version(self._agent.id, plan) is None:
            raise PlanNotFoundError(f"no plan named {plan!r}; submit it first")
        return await self._engine_schedules.create(
            name or plan, workflow=PLAN_WORKFLOW, cron=cron, every=every, timezone=timezone,
            start=start, end=end, params=params, overlap=overlap, catchup=catchup,
            replace=replace, scope=self._agent.id, plan=plan)

    async def list(self) -> list[Schedule]:
        """This agent's schedules, by name."""
        return await self._engine_schedules.list(
            scope=self._agent.id)

    async def get(self, name: str) -> Schedule:
        return await self._engine_schedules.get(
            name, scope=self._agent.id)

    async def pause(self, name: str) -> Schedule:
        return await self._engine_schedules.pause(
            name, scope=self._agent.id)

    async def resume(self, name: str) -> Schedule:
        return await self._engine_schedules.resume(
            name, scope=self._agent.id)

    async def delete(self, name: str) -> None:
        await self._engine_schedules.delete(name, scope=self._agent.id)

    async def next_fire_times(self, name: str, count: int = 5) -> builtins.list[datetime]:
        return await self._engine_schedules.next_fire_times(
            name, count, scope=self._agent.id)

