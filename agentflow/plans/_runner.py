"""The bridge from the engine to the sandbox: one plan run, and the host side of its calls.

`_PlanRunner` is what the dynamic entrypoint's loader returns for an instance: it loads
the pinned plan version (compiled, cached by the `AgentFlow`) and runs it in the agent's
worker. Every ``step.*`` the plan makes comes back to `_PlanHost`, which drives it
through the engine's journal (`_host_step`), and every capability call goes to the
agent's grants.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agentflow.capabilities import Capability, CapabilityContext, CapabilityError
from agentflow.errors import (
    InvalidArgumentError,
    LimitExceededError,
    NonRetryableError,
    StepError,
    Suspend,
    WorkflowTimeoutError,
    rebuild_error,
)
from agentflow.models import Event
from sandbox import PlanRuntimeError, RemoteError, WorkerCrashedError

if TYPE_CHECKING:
    from agentflow.plans._flow import AgentFlow


class _PlanRunner:
    """Runs one plan version for one agent, in its worker, against the engine's step."""

    def __init__(self, af: AgentFlow, agent_id: str, name: str, version: str) -> None:
        self.af, self.agent_id, self.name, self.version = af, agent_id, name, version

    async def run(self, event: Event, step: Any) -> Any:
        plan = await self.af.compiled(self.agent_id, self.name, self.version)
        grants = self.af.capabilities_of(self.agent_id)
        host = _PlanHost(self.af, self.agent_id, event.instance_id, step, grants)
        raw_event = {"payload": event.payload, "timestamp": event.timestamp.isoformat(),
                     "instance_id": event.instance_id}
        try:
            return await self.af.pool.run_plan(self.agent_id, plan, raw_event, host,
                                               capabilities=sorted(grants),
                                               label=event.instance_id)
        except PlanRuntimeError as exc:
            raise rebuild_error({"name": exc.error_name, "message": exc.message}) from None
        except WorkerCrashedError as exc:
            if not exc.rerun:
                raise
            # The host ended the worker (an eviction, or another run's body that would
            # not stop when cancelled): not this run's fault. Park the instance as due
            # now; it replays from its journal in a fresh worker.
            raise Suspend(f"re-run: {exc}") from None


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
                                    store=self.af.engine.store, now=self.af.engine.clock.now(),
                                    quotas=self.af.quotas)
        return await grant.call(method, list(args), dict(kwargs), context)


async def _host_step(host: _PlanHost, op: str, args: dict[str, Any], run_body: Any) -> Any:
    step = host.engine_step
    name = args.get("name")
    if op == "do":
        async def body() -> Any:
            await host.af.step_rate(host.agent_id).take()  # delays, never fails
            try:
                return await run_body()
            except WorkerCrashedError as exc:
                if exc.rerun:  # not this body's fault: no failed attempt, a re-run
                    raise Suspend(f"re-run: {exc}") from None
                raise
            except RemoteError as exc:
                if exc.error_name == "LimitExceededError":  # a quota: the same on a retry
                    raise LimitExceededError(exc.message) from None
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
