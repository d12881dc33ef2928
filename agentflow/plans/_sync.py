"""The synchronous facade: `AgentFlow.in_thread()` for scripts without ``async``.

The `AgentFlow` runs on an event loop in a background thread (its engine drives
instances there); every method here submits the matching coroutine to that loop and
blocks until it returns, so a plain script can author, start, wait for and steer
instances:

    with AgentFlow("sqlite:///agentflow.db").in_thread() as af:
        agent = af.agent("a1")
        agent.submit_plan("digest", source)
        inst = agent.start("digest", params={"n": 2})
        print(inst.wait(timeout=30).output)

Names and arguments are those of the async API (`Agent`, `AgentInstance`), minus the
``await``. Calling one from the facade's own loop thread would deadlock it, so that is
refused with `UsageError`. The sync tool adapters and `agentflow.tools.author_plan`
accept a `SyncAgent` where they take an `Agent`.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Coroutine, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from agentflow._schedules import Schedule
from agentflow.errors import UsageError
from agentflow.models import InstanceStatus, StepRecord

if TYPE_CHECKING:
    from agentflow._retention import PruneReport
    from agentflow.capabilities import Capability
    from agentflow.plans import (
        Agent,
        AgentFlow,
        AgentInstance,
        AgentInstanceStatus,
        PendingEvent,
        PlanVersion,
    )
    from sandbox import ValidationReport

__all__ = ["SyncAgent", "SyncAgentFlow", "SyncInstance", "SyncSchedules"]

T = TypeVar("T")


def _call(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise UsageError("a sync call on the AgentFlow's own event loop would block it; "
                         "use the async API there")
    if loop.is_closed() or not loop.is_running():
        coro.close()
        raise UsageError("the AgentFlow is no longer running: use it inside "
                         "`with AgentFlow(url).in_thread() as af:`")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


class SyncInstance:
    """`AgentInstance` (or an engine `Instance`), with every method synchronous."""

    def __init__(self, inst: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.aio = inst  #: the async handle
        self._loop = loop
        self.id: str = inst.id
        self.plan: str | None = getattr(inst, "plan", None)
        self.version: str | None = getattr(inst, "version", None)

    def __repr__(self) -> str:
        return f"SyncInstance(id={self.id!r})"

    def status(self) -> InstanceStatus:
        return _call(self._loop, self.aio.status())  # type: ignore[no-any-return]

    def wait(self, timeout: Any = None) -> InstanceStatus:
        """Block until it is finished, paused or waiting on something in the future."""
        return _call(self._loop, self.aio.wait(timeout))  # type: ignore[no-any-return]

    def history(self) -> builtins.list[StepRecord]:
        return _call(self._loop, self.aio.history())

    def send_event(self, type: str, payload: Any = None, *, step: str | None = None) -> None:
        _call(self._loop, self.aio.send_event(type, payload, step=step))

    def pause(self) -> None:
        _call(self._loop, self.aio.pause())

    def resume(self) -> None:
        _call(self._loop, self.aio.resume())

    def terminate(self) -> None:
        _call(self._loop, self.aio.terminate())

    def restart(self, from_step: str | None = None, *, upgrade: bool = False) -> None:
        if upgrade:
            _call(self._loop, self.aio.restart(from_step, upgrade=True))
        else:
            _call(self._loop, self.aio.restart(from_step))
        self.version = getattr(self.aio, "version", None)


class SyncSchedules:
    """``agent.schedules`` (see `agentflow.plans.AgentSchedules`), sync."""

    def __init__(self, schedules: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.aio = schedules
        self._loop = loop

    def create(self, plan: str, **options: Any) -> Schedule:
        return _call(self._loop, self.aio.create(plan, **options))  # type: ignore[no-any-return]

    def list(self) -> builtins.list[Schedule]:
        return _call(self._loop, self.aio.list())

    def get(self, name: str) -> Schedule:
        return _call(self._loop, self.aio.get(name))  # type: ignore[no-any-return]

    def pause(self, name: str) -> Schedule:
        return _call(self._loop, self.aio.pause(name))  # type: ignore[no-any-return]

    def resume(self, name: str) -> Schedule:
        return _call(self._loop, self.aio.resume(name))  # type: ignore[no-any-return]

    def delete(self, name: str) -> None:
        _call(self._loop, self.aio.delete(name))

    def next_fire_times(self, name: str, count: int = 5) -> builtins.list[datetime]:
        return _call(self._loop,
                     self.aio.next_fire_times(name, count))


class SyncAgent:
    """`Agent`, with every method synchronous."""

    def __init__(self, agent: Agent, loop: asyncio.AbstractEventLoop) -> None:
        self.aio = agent  #: the async `Agent` (for the async tool adapters)
        self._loop = loop
        self.id = agent.id

    def __repr__(self) -> str:
        return f"SyncAgent({self.id!r})"

    @property
    def flow(self) -> AgentFlow:
        return self.aio.flow

    @property
    def schedules(self) -> SyncSchedules:
        return SyncSchedules(self.aio.schedules, self._loop)

    def _instance(self, inst: AgentInstance) -> SyncInstance:
        return SyncInstance(inst, self._loop)

    def validate(self, source: str) -> ValidationReport:
        return self.aio.validate(source)

    def submit_plan(self, name: str, source: str) -> PlanVersion:
        return _call(self._loop, self.aio.submit_plan(name, source))

    def plans(self) -> list[PlanVersion]:
        return _call(self._loop, self.aio.plans())

    def plan_versions(self, name: str) -> list[PlanVersion]:
        return _call(self._loop, self.aio.plan_versions(name))

    def plan_source(self, name: str, version: str | None = None) -> str:
        return _call(self._loop, self.aio.plan_source(name, version))

    def start(self, name: str, params: Any = None, *, id: str | None = None) -> SyncInstance:
        return self._instance(_call(self._loop, self.aio.start(name, params, id=id)))

    def get(self, instance_id: str) -> SyncInstance:
        return self._instance(_call(self._loop, self.aio.get(instance_id)))

    def instances(self, status: str | list[str] | None = None, *, limit: int = 100,
                  offset: int = 0) -> list[AgentInstanceStatus]:
        return _call(self._loop, self.aio.instances(status, limit=limit, offset=offset))

    def status(self, instance_id: str) -> InstanceStatus:
        return _call(self._loop, self.aio.status(instance_id))

    def wait(self, instance_id: str, timeout: Any = None) -> InstanceStatus:
        return _call(self._loop, self.aio.wait(instance_id, timeout))

    def history(self, instance_id: str) -> list[StepRecord]:
        return _call(self._loop, self.aio.history(instance_id))

    def send_event(self, instance_id: str, type: str, payload: Any = None, *,
                   step: str | None = None) -> None:
        _call(self._loop, self.aio.send_event(instance_id, type, payload, step=step))

    def pending_events(self) -> list[PendingEvent]:
        return _call(self._loop, self.aio.pending_events())

    def pause(self, instance_id: str) -> None:
        _call(self._loop, self.aio.pause(instance_id))

    def resume(self, instance_id: str) -> None:
        _call(self._loop, self.aio.resume(instance_id))

    def terminate(self, instance_id: str) -> None:
        _call(self._loop, self.aio.terminate(instance_id))

    def restart(self, instance_id: str, from_step: str | None = None, *,
                upgrade: bool = False) -> None:
        _call(self._loop, self.aio.restart(instance_id, from_step, upgrade=upgrade))

    def schedule(self, plan: str, **options: Any) -> Schedule:
        """``agent.schedules.create(plan, ...)``."""
        return self.schedules.create(plan, **options)


class SyncAgentFlow:
    """What ``with AgentFlow(url).in_thread() as af:`` gives: the `AgentFlow`, with
    every method synchronous (see the module docstring)."""

    def __init__(self, flow: AgentFlow, loop: asyncio.AbstractEventLoop) -> None:
        self.aio = flow  #: the async `AgentFlow`
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the AgentFlow runs on (in its own thread)."""
        return self._loop

    def agent(self, agent_id: str, capabilities: Mapping[str, Capability] | None = None
              ) -> SyncAgent:
        return SyncAgent(self.aio.agent(agent_id, capabilities), self._loop)

    def instance(self, instance_id: str) -> SyncInstance:
        """Any instance by id (operator side), whatever agent or workflow it belongs to."""
        return SyncInstance(_call(self._loop, self.aio.engine.get_instance(instance_id)),
                            self._loop)

    def list_instances(self, *, workflow: str | list[str] | None = None,
                       status: str | list[str] | None = None, limit: int = 100,
                       offset: int = 0) -> list[InstanceStatus]:
        return _call(self._loop, self.aio.engine.list_instances(
            workflow=workflow, status=status, limit=limit, offset=offset))

    def prune(self) -> PruneReport:
        """Apply the retention policies once (see `agentflow._retention`)."""
        return _call(self._loop, self.aio.engine.retention.prune())
