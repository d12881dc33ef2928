"""The bridge from the engine to the sandbox: one plan run, and the host side of its calls.

`_PlanRunner` is what the dynamic entrypoint's loader returns for an instance: it loads
the pinned plan version (compiled, cached by the `AgentFlow`) and runs it in the agent's
worker. Every ``step.*`` the plan makes comes back to `_PlanHost`, which drives it
through the engine's journal (`_host_step`), and every capability call goes to the
agent's grants.

What a model reads when its plan fails is built here: a plan error keeps where it
happened (plan line, function and source line; plan frames only, from the sandbox) and
the step it belongs to, as the error's ``plan_context``, which `error_record` journals.
What the plan printed reaches the engine's `Step.log` in the task of the step call it
belongs to. Errors no retry can fix fail the step at once: a capability's refusal,
arguments a capability method rejects, a capability not granted, a result that is not
JSON.

A plan's errors are its own: whatever name one claims (``StepError(...,
error_name="NonDeterminismError")``), it is recorded with ``"origin": "plan"`` and never
as one of the engine's errors. An error the host raised into the plan (a step's
timeout, a quota, a capability's refusal) that the plan let through stays the host's:
`_PlanHost` remembers what it raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentflow._durations import iso_datetime
from agentflow._limits import encode_value
from agentflow._step import untimed
from agentflow.capabilities import Capability, CapabilityContext, CapabilityError
from agentflow.errors import (
    PLAN_ORIGIN,
    InvalidArgumentError,
    LimitExceededError,
    NonRetryableError,
    StepError,
    Suspend,
    error_record,
    rebuild_error,
)
from agentflow.models import Event
from sandbox import PlanRuntimeError, RemoteError, WorkerCrashedError, place_words

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
            value = await self.af.pool.run_plan(self.agent_id, plan, raw_event, host,
                                                capabilities=sorted(grants),
                                                label=event.instance_id)
        except PlanRuntimeError as exc:
            known = host.raised_into_plan(exc.error_name, exc.message)
            if known is not None:  # the host's own error, let through: still the host's
                _locate(known, exc)
                raise known from None
            error = rebuild_error({"name": exc.error_name, "message": exc.message,
                                   "origin": PLAN_ORIGIN})
            error.plan_context = {  # type: ignore[attr-defined]
                "where": exc.where, "step": exc.step, "after_step": exc.after_step,
                "at": _place(exc),
                "message": exc.message}  # KeyError('k') rebuilt would say "'k'" quoted
            raise error from None
        except WorkerCrashedError as exc:
            if not exc.rerun:
                raise
            # The host ended the worker (an eviction, or another run's body that would
            # not stop when cancelled): not this run's fault. Park the instance as due
            # now; it replays from its journal in a fresh worker.
            raise Suspend(f"re-run: {exc}") from None
        try:  # checked here, so the error names the plan, not the engine's workflow
            encode_value(value, what="the value `run` returned")
        except InvalidArgumentError as exc:
            error = InvalidArgumentError(f"{exc}; return dicts, lists, str, int, float, "
                                         f"bool or None")
            error.plan_context = {  # type: ignore[attr-defined]
                "after_step": host.last_step,
                "at": place_words(None, host.last_step, returned=True)}
            raise error from None
        return value


def _locate(error: Exception, exc: PlanRuntimeError) -> None:
    """Give the host's ``error``, which the plan let through, the place the sandbox saw
    it leave the plan (the run's frames down to the step call, then the body's)."""
    context = getattr(error, "plan_context", None)
    context = dict(context) if isinstance(context, dict) else {}
    for key, value in (("where", exc.where), ("step", exc.step),
                       ("after_step", exc.after_step), ("at", _place(exc))):
        if value is not None:
            context[key] = value
    error.plan_context = context  # type: ignore[attr-defined]


def _place(exc: PlanRuntimeError) -> str:
    """Where in the run the sandbox saw ``exc`` end it, in words (`place_words`)."""
    return place_words(exc.step, exc.after_step, returned=exc.returned)


class _PlanHost:
    """The host side of a plan's calls: steps go to the engine, capabilities to grants."""

    def __init__(self, af: AgentFlow, agent_id: str, instance_id: str, step: Any,
                 grants: Mapping[str, Capability]) -> None:
        self.af, self.agent_id, self.instance_id = af, agent_id, instance_id
        self.engine_step, self.grants = step, grants
        # Errors the host raised into the plan, by (name, message): what comes back
        # with one of them is the host's error passed through, not the plan's.
        self._raised: dict[tuple[str, str], Exception] = {}
        self.last_step: str | None = None  # the last step call that returned

    def returned(self, op: str, args: dict[str, Any]) -> None:
        """A step call returned to the plan: errors after it say so."""
        name = args.get("name")
        self.last_step = name if isinstance(name, str) else op

    def raised_into_plan(self, name: str, message: str) -> Exception | None:
        """The host's error of that name and message, if it raised one into the plan."""
        return self._raised.get((name, message))

    def _remember(self, exc: Exception) -> None:
        record = error_record(exc)
        if record.get("origin") != PLAN_ORIGIN:
            self._raised[(record["name"], record["message"])] = exc

    async def step(self, op: str, args: dict[str, Any], run_body: Any) -> Any:
        """A plan's ``step.*`` call, driven by the engine's journal."""
        try:
            value = await _host_step(self, op, args, run_body)
        except Exception as exc:
            self._remember(exc)
            raise
        self.returned(op, args)
        return value

    def log(self, lines: list[str]) -> None:
        """What the plan printed: kept by the engine with its step call or attempt."""
        self.engine_step.log(*lines)

    async def capability(self, name: str, method: str, args: list[Any],
                         kwargs: dict[str, Any]) -> Any:
        try:
            return await self._capability(name, method, args, kwargs)
        except Exception as exc:
            self._remember(exc)
            raise

    async def _capability(self, name: str, method: str, args: list[Any],
                          kwargs: dict[str, Any]) -> Any:
        grant = self.grants.get(name)
        if grant is None:
            raise _final(CapabilityError(f"capability {name!r} is not granted to this "
                                         f"agent"))
        context = CapabilityContext(agent_id=self.agent_id, instance_id=self.instance_id,
                                    store=self.af.engine.store, now=self.af.engine.clock.now(),
                                    quotas=self.af.quotas)
        try:
            return await grant.call(method, list(args), dict(kwargs), context)
        except (CapabilityError, InvalidArgumentError, TypeError) as exc:
            raise _final(exc) from None  # a refusal or arguments it rejects: every time


def _final(exc: Exception) -> Exception:
    """Mark ``exc`` as one that no retry can fix (the sandbox then fails the step)."""
    exc.final = True  # type: ignore[attr-defined]
    return exc


def _step_failure(exc: RemoteError, name: Any, host: _PlanHost) -> Exception:
    """The engine error for a step body's error, keeping where in the plan it was."""
    error: Exception
    known = host.raised_into_plan(exc.error_name, exc.message)
    if exc.error_name == "LimitExceededError" and (known is not None or exc.quota):
        error = LimitExceededError(exc.message)  # a quota: the same on a retry
    elif exc.error_name == "NonRetryableError":  # the plan's own signal to stop
        error = NonRetryableError(exc.message)
        error.origin = PLAN_ORIGIN  # type: ignore[attr-defined]
    elif known is not None:
        # A capability's refusal (a denied host, a reply over its cap, an HTTP 4xx) is
        # the same on every attempt; its transient failures were retried inside the
        # capability, and end in other errors.
        error = StepError(exc.message, error_name=exc.error_name, step=name,
                          retryable=not (exc.final or exc.error_name == "CapabilityError"))
    else:
        # Anything else the body raised is the plan's own error, never the engine's,
        # whatever its name (a WorkflowTimeoutError it raises is still a failed attempt,
        # retried). ``final``: the sandbox saw an error no retry can fix (a result that
        # is not JSON, arguments a capability rejected).
        error = StepError(exc.message, error_name=exc.error_name, step=name,
                          retryable=not exc.final, origin=PLAN_ORIGIN)
    setattr(error, "plan_context", {  # noqa: B010
        "where": exc.where, "step": name, "message": exc.message})
    return error


async def _host_step(host: _PlanHost, op: str, args: dict[str, Any], run_body: Any) -> Any:
    step = host.engine_step
    name = args.get("name")
    if op == "do":
        async def body() -> Any:
            # Delays, never fails: the wait is not the attempt's, so it cannot time out.
            await untimed(host.af.step_rate(host.agent_id).take())
            try:
                return await run_body()
            except WorkerCrashedError as exc:
                if exc.rerun:  # not this body's fault: no failed attempt, a re-run
                    raise Suspend(f"re-run: {exc}") from None
                raise
            except RemoteError as exc:
                raise _step_failure(exc, name, host) from None
        try:
            return await step.do(name, body, retries=args.get("retries"),
                                 timeout=args.get("timeout"))
        except Exception as exc:  # the step failed for good: say where its body failed
            context = getattr(exc, "plan_context", None)
            if isinstance(context, dict) and isinstance(context.get("where"), dict):
                exc.where = context["where"]  # type: ignore[attr-defined]
            raise
    if op == "sleep":
        return await step.sleep(name, args.get("duration"))
    if op == "sleep_until":
        when = iso_datetime(args.get("when"), what=f"sleep_until {name!r}:")
        return await step.sleep_until(name, when)
    if op == "wait_for_event":
        return await step.wait_for_event(name, type=args.get("type"),
                                         timeout=args.get("timeout", "24 hours"),
                                         note=args.get("note"))
    if op in ("now", "random", "uuid"):
        return await getattr(step, op)()
    raise InvalidArgumentError(f"unknown step operation {op!r}")
