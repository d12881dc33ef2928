"""The tool handlers: one per tool, shared by the MCP server and the model adapters.

Each is ``async def handle_<tool>(agent, args, context=None) -> <Tool>Result``. It acts
only through the `Agent` scope, so an agent reaches its own plans and instances only,
and another agent's are "not found". Bad input raises an `AgentflowError` (a
`UsageError` with a message that says what to do) *before* anything is written; the
front end turns it into an error result. A plan that fails validation is not an error:
it comes back as ``ok=False`` with diagnostics the model can act on.

Human-only events: ``send_event`` refuses the human-only types (the database's policy,
plus `ToolContext.human_only`); ``approve`` delivers ``{"approved", "comment", "by":
"human"}`` only when a person accepted the request through `ToolContext.ask_human`
(never with ``approvals = operator-only``), and otherwise sends nothing;
``restart_instance`` refuses to keep a person's decision in the kept journal.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agentflow.errors import InvalidStateError, describe_error
from agentflow.models import InstanceStatus, StepRecord
from agentflow.plans import (
    Agent,
    AgentInstance,
    AgentInstanceStatus,
    PlanValidationError,
    PlanVersion,
)
from agentflow.policy import ApprovalPolicy, OperatorPolicy
from agentflow.tools._activity import failed_attempts, recent_logs
from agentflow.tools._approval import ApprovalRequest, approval_record
from agentflow.tools._context import (
    HumanOnlyEventError,
    ToolContext,
    is_human_only,
)
from agentflow.tools._models import (
    ApproveArgs,
    ApproveResult,
    CapabilityInfo,
    DescribeCapabilitiesArgs,
    DescribeCapabilitiesResult,
    DiagnosticInfo,
    GetHistoryArgs,
    GetHistoryResult,
    GetInstanceArgs,
    GetInstanceResult,
    InstanceInfo,
    ListInstancesArgs,
    ListInstancesResult,
    ListPendingEventsArgs,
    ListPendingEventsResult,
    ListPlansArgs,
    ListPlansResult,
    PauseInstanceArgs,
    PauseInstanceResult,
    PendingEventInfo,
    PlanInfo,
    RestartInfo,
    RestartInstanceArgs,
    RestartInstanceResult,
    ResumeInstanceArgs,
    ResumeInstanceResult,
    SendEventArgs,
    SendEventResult,
    StartInstanceArgs,
    StartInstanceResult,
    StepInfo,
    SubmitPlanArgs,
    SubmitPlanResult,
    TerminateInstanceArgs,
    TerminateInstanceResult,
    ValidatePlanArgs,
    ValidatePlanResult,
    WaitForInstanceArgs,
    WaitForInstanceResult,
)
from agentflow.tools._summaries import describe_diagnostics, describe_instance
from sandbox import ValidationReport

__all__ = [
    "approval_request",
    "handle_approve",
    "handle_describe_capabilities",
    "handle_get_history",
    "handle_get_instance",
    "handle_list_instances",
    "handle_list_pending_events",
    "handle_list_plans",
    "handle_pause_instance",
    "handle_restart_instance",
    "handle_resume_instance",
    "handle_send_event",
    "handle_start_instance",
    "handle_submit_plan",
    "handle_terminate_instance",
    "handle_validate_plan",
    "handle_wait_for_instance",
    "how_a_person_answers",
    "instance_info",
    "kept_human_decision",
    "policy_of",
]

_DEFAULT = ToolContext()
#: Seconds between progress reports while ``wait_for_instance`` waits.
PROGRESS_INTERVAL = 1.0
#: A step result longer than this (as JSON) is shown shortened in ``get_history``.
MAX_RESULT_CHARS = 4000


async def policy_of(agent: Agent) -> ApprovalPolicy:
    """The operator's approval policy in the agent's database."""
    return await OperatorPolicy(agent.flow.engine.store).read()


async def _context(agent: Agent, context: ToolContext | None) -> ToolContext:
    """The front end's context, with the database's human-only types added: a front
    end may add types, never take the operator's away."""
    ctx = context or _DEFAULT
    policy = await policy_of(agent)
    return dataclasses.replace(ctx, human_only=ctx.human_only | policy.human_only)


# --- conversions -------------------------------------------------------------------------

def _info(inst: AgentInstance | AgentInstanceStatus, status: InstanceStatus) -> InstanceInfo:
    return InstanceInfo(id=status.id, plan=inst.plan, version=inst.version,
                        status=status.status, output=status.output, error=status.error,
                        waiting_on=status.waiting_on, created_at=status.created_at,
                        updated_at=status.updated_at)


async def instance_info(agent: Agent, instance_id: str) -> InstanceInfo:
    """The agent's instance as the tools show it (InstanceNotFoundError otherwise)."""
    inst = await agent.get(instance_id)
    return _info(inst, await inst.status())


def _plan_info(version: PlanVersion) -> PlanInfo:
    return PlanInfo(name=version.name, version=version.version,
                    created_at=version.created_at, current=version.current)


def _diagnostics(report: ValidationReport) -> list[DiagnosticInfo]:
    return [DiagnosticInfo(line=d.line, col=d.col, code=d.code, message=d.message,
                           hint=d.hint) for d in report.diagnostics]


def _step_info(record: StepRecord) -> StepInfo:
    result, truncated = record.result, False
    text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
    if len(text) > MAX_RESULT_CHARS:
        result, truncated = text[:MAX_RESULT_CHARS] + "…", True
    return StepInfo(seq=record.seq, name=record.name, n=record.n, kind=record.kind,
                    status=record.status, attempts=record.attempts, result=result,
                    result_truncated=truncated, error=record.error,
                    started_at=record.started_at, finished_at=record.finished_at,
                    wake_at=record.wake_at, logs=record.logs,
                    attempt_history=record.attempt_history)


# --- plans ---------------------------------------------------------------------------------

async def handle_validate_plan(agent: Agent, args: ValidatePlanArgs,
                               context: ToolContext | None = None) -> ValidatePlanResult:
    """Check a plan without storing it."""
    diagnostics = _diagnostics(agent.validate(args.source))
    if not diagnostics:
        return ValidatePlanResult(ok=True, diagnostics=[], summary=(
            "The plan is valid. submit_plan stores it; start_instance runs it."))
    return ValidatePlanResult(ok=False, diagnostics=diagnostics, summary=(
        f"The plan has {len(diagnostics)} problem{'s' * (len(diagnostics) > 1)}; fix "
        f"them and validate again:\n{describe_diagnostics(diagnostics)}"))


async def handle_submit_plan(agent: Agent, args: SubmitPlanArgs,
                             context: ToolContext | None = None) -> SubmitPlanResult:
    """Validate and store a new current version of a plan."""
    try:
        version = await agent.submit_plan(args.name, args.source)  # validates first
    except PlanValidationError as exc:
        diagnostics = _diagnostics(exc.report)
    else:
        return SubmitPlanResult(ok=True, plan=_plan_info(version), diagnostics=[],
                                summary=(f"Stored plan {version.name!r} version "
                                         f"{version.version}; start_instance runs it."))
    return SubmitPlanResult(ok=False, plan=None, diagnostics=diagnostics, summary=(
        f"Nothing was stored: the plan has {len(diagnostics)} "
        f"problem{'s' * (len(diagnostics) > 1)}. Fix them and submit again:\n"
        f"{describe_diagnostics(diagnostics)}"))


async def handle_list_plans(agent: Agent, args: ListPlansArgs,
                            context: ToolContext | None = None) -> ListPlansResult:
    """The agent's plans (current versions), or every version of one plan."""
    if args.name is not None:
        versions = await agent.plan_versions(args.name)
        plans = [_plan_info(v) for v in versions]
        current = next((p.version for p in plans if p.current), plans[-1].version)
        return ListPlansResult(plans=plans, summary=(
            f"Plan {args.name!r} has {len(plans)} version{'s' * (len(plans) > 1)}; the "
            f"current one is {current}."))
    plans = [_plan_info(v) for v in await agent.plans()]
    if not plans:
        return ListPlansResult(plans=[], summary="No plans yet: write one, validate_plan, "
                                                 "then submit_plan.")
    names = ", ".join(p.name for p in plans)
    return ListPlansResult(plans=plans, summary=f"{len(plans)} plan"
                                                f"{'s' * (len(plans) > 1)}: {names}.")


# --- instances -----------------------------------------------------------------------------

async def handle_start_instance(agent: Agent, args: StartInstanceArgs,
                                context: ToolContext | None = None) -> StartInstanceResult:
    """Start an instance of a plan's current version."""
    ctx = await _context(agent, context)
    inst = await agent.start(args.plan, params={} if args.params is None else args.params,
                             id=args.id)
    info = _info(inst, await inst.status())
    return StartInstanceResult(instance=info, summary=(
        f"Started. {describe_instance(info, ctx.human_only)}"))


async def handle_get_instance(agent: Agent, args: GetInstanceArgs,
                              context: ToolContext | None = None) -> GetInstanceResult:
    """One instance's status, output or error (with its plan line and step), what it
    waits on, the last lines it printed and its failed attempts."""
    ctx = await _context(agent, context)
    inst = await agent.get(args.instance_id)
    info = _info(inst, await inst.status())
    records = await inst.history()
    logs, failed = recent_logs(records), failed_attempts(records)
    text = describe_instance(info, ctx.human_only)
    if failed and info.status != "errored":
        last = failed[-1]
        text += (f" {len(failed)} failed attempt{'s' * (len(failed) != 1)}; the last: step "
                 f"{last.step!r} attempt {last.attempt}: {last.error.get('name')}: "
                 f"{str(last.error.get('message', ''))[:200]}.")
    if logs:
        text += f" It printed {len(logs)} line{'s' * (len(logs) != 1)}; the last: " + " | ".join(
            line[:200] for line in logs[-5:])
    return GetInstanceResult(instance=info, logs=logs, failed_attempts=failed, summary=text)


async def handle_describe_capabilities(agent: Agent, args: DescribeCapabilitiesArgs,
                                       context: ToolContext | None = None
                                       ) -> DescribeCapabilitiesResult:
    """What `env` holds for this agent: each capability's methods, calls and limits."""
    infos = []
    for name, capability in sorted(agent.capabilities.items()):
        described = capability.describe()
        calls = described.pop("calls", {})
        methods = described.pop("methods", sorted(capability.methods))
        described.pop("name", None)
        infos.append(CapabilityInfo(name=name, methods=list(methods), calls=calls,
                                    limits=described))
    if not infos:
        return DescribeCapabilitiesResult(capabilities=[], summary=(
            "No capability is granted to you: `env` is empty. Compute in the plan, or ask "
            "the operator for one."))
    lines = [f"env.{i.name}: " + "; ".join(
        str(c.get("call", m)) for m, c in i.calls.items()) for i in infos]
    return DescribeCapabilitiesResult(capabilities=infos, summary=(
        "Granted: " + " | ".join(lines) + ". Call them inside a step body."))


async def handle_list_instances(agent: Agent, args: ListInstancesArgs,
                                context: ToolContext | None = None) -> ListInstancesResult:
    """The agent's instances, newest first."""
    statuses = [str(s) for s in args.status] if args.status else None
    found = await agent.instances(statuses, limit=args.limit + 1, offset=args.offset)
    has_more = len(found) > args.limit
    infos = [_info(s, s) for s in found[:args.limit]]  # the plan and version come along
    if not infos:
        return ListInstancesResult(instances=[], has_more=False, summary=(
            "No instances" + (f" with status {', '.join(statuses)}" if statuses else "")
            + "."))
    counts: dict[str, int] = {}
    for info in infos:
        counts[info.status] = counts.get(info.status, 0) + 1
    shown = ", ".join(f"{n} {status}" for status, n in counts.items())
    return ListInstancesResult(instances=infos, has_more=has_more, summary=(
        f"{len(infos)} instance{'s' * (len(infos) > 1)}: {shown}."
        + (" More follow: call again with a larger offset." if has_more else "")))


async def handle_wait_for_instance(agent: Agent, args: WaitForInstanceArgs,
                                   context: ToolContext | None = None
                                   ) -> WaitForInstanceResult:
    """Wait (at most 50 s) until the instance finishes, pauses or waits on something."""
    ctx = await _context(agent, context)
    inst = await agent.get(args.instance_id)
    started = time.monotonic()
    deadline = started + args.timeout_seconds
    settled = False
    while True:
        remaining = deadline - time.monotonic()
        try:
            status = await inst.wait(timeout=max(0.0, min(remaining, PROGRESS_INTERVAL)))
        except TimeoutError:
            status = await inst.status()
            if remaining <= PROGRESS_INTERVAL:
                break
            if ctx.report_progress is not None:
                elapsed = time.monotonic() - started
                await ctx.report_progress(round(elapsed, 1), args.timeout_seconds,
                                          f"instance {inst.id} is {status.status}")
        else:
            settled = True
            break
    waited = round(time.monotonic() - started, 3)
    info = _info(inst, status)
    text = describe_instance(info, ctx.human_only)
    if not settled:
        text = f"Still busy after {waited:.0f} s. {text}"
    return WaitForInstanceResult(instance=info, settled=settled, waited_seconds=waited,
                                 summary=text)


async def handle_send_event(agent: Agent, args: SendEventArgs,
                            context: ToolContext | None = None) -> SendEventResult:
    """Send an event that is not human-only to one of the agent's instances."""
    ctx = await _context(agent, context)
    if is_human_only(args.type, ctx.human_only):
        raise HumanOnlyEventError(
            f"event type {args.type!r} is human-only: an agent cannot send it, so that no "
            f"agent approves its own plan. Call approve with instance_id="
            f"{args.instance_id!r}: it asks a person, or says how a person can answer.")
    inst = await agent.get(args.instance_id)
    before = await inst.status()
    await inst.send_event(args.type, args.payload)
    w = before.waiting_on
    woke = before.status == "waiting" and w is not None and w.kind == "event" and (
        w.type == args.type)
    info = _info(inst, await inst.status())
    what = ("It was waiting for it and runs on." if woke else
            "It is buffered until the plan waits for this type.")
    return SendEventResult(instance_id=inst.id, type=args.type, woke=woke, instance=info,
                           summary=f"Sent {args.type!r} to {inst.id}. {what}")


async def handle_list_pending_events(agent: Agent, args: ListPendingEventsArgs,
                                     context: ToolContext | None = None
                                     ) -> ListPendingEventsResult:
    """The agent's instances that wait for an event, marked when only a person answers."""
    ctx = await _context(agent, context)
    pending = [PendingEventInfo(instance_id=p.instance_id, plan=p.plan, type=p.type,
                                step=p.step, deadline=p.deadline,
                                human_only=is_human_only(p.type, ctx.human_only))
               for p in await agent.pending_events()]
    if not pending:
        return ListPendingEventsResult(pending=[], summary="No instance waits for an event.")
    human = sum(p.human_only for p in pending)
    text = ("1 instance waits for an event" if len(pending) == 1
            else f"{len(pending)} instances wait for an event")
    if human:
        text += f"; {human} need{'s' * (human == 1)} a person (use approve)"
    return ListPendingEventsResult(pending=pending, summary=text + ".")


def how_a_person_answers(instance_id: str) -> str:
    """The operator-side ways to answer an approval, for people and docs."""
    return (f"A person answers on the operator's side with `agentflow approve {instance_id}`"
            f" or `agentflow reject {instance_id}`, or from Python with "
            f"`agent.send_event({instance_id!r}, 'approval', {{'approved': True, "
            f"'comment': '...', 'by': 'human'}})`.")


async def approval_request(agent: Agent, instance_id: str, note: str,
                           human_only: frozenset[str]) -> ApprovalRequest:
    """What a person would be asked about this instance, read from the store: the wait,
    the params and the plan source from the wait onward (see `ApprovalRequest`).

    Raises:
        InstanceNotFoundError: not this agent's instance.
        InvalidStateError: it does not wait for a human-only event.
    """
    inst = await agent.get(instance_id)
    row = await agent.flow.engine.store.get_instance(inst.id)  # one read for all of it
    record = None if row is None else await approval_record(agent.flow.engine.store, row,
                                                             note)
    if record is None or not is_human_only(record.type, human_only):
        status = await inst.status()
        w = status.waiting_on
        if w is not None and w.kind == "event":
            waits = f"waits for a {w.type!r} event, which is not human-only (use send_event)"
        elif w is not None:  # a sleep or a retry timer
            waits = (f"waits on a {w.kind} at step {w.step!r} until "
                     f"{w.until.isoformat(timespec='seconds')}")
        else:
            waits = f"is {status.status}"
        raise InvalidStateError(
            f"instance {instance_id!r} does not wait for an approval: it {waits}. approve "
            f"applies to an instance that waits for one of the human-only event types "
            f"{sorted(human_only)}; list_pending_events shows which do.")
    return record


def _not_answered(action: str, instance_id: str) -> str:
    return (f"The request was {action} without a decision: nothing was sent and instance "
            f"{instance_id} keeps waiting. Whatever the client runs answers its requests "
            f"(a person, or a hook that answers for them), so do not ask again at once. "
            f"{how_a_person_answers(instance_id)}")


async def handle_approve(agent: Agent, args: ApproveArgs,
                         context: ToolContext | None = None) -> ApproveResult:
    """Ask a person to approve or reject; deliver their decision, never the agent's.

    With the operator's ``approvals = operator-only`` nobody is asked here: the result
    says how a person answers from the operator's side.
    """
    ctx = await _context(agent, context)
    policy = await policy_of(agent)
    request = await approval_request(agent, args.instance_id, args.note, ctx.human_only)
    operator_only = policy.approvals == "operator-only"
    answer = (await ctx.ask_human(request)
              if ctx.ask_human is not None and not operator_only else None)

    async def result(outcome: Any, summary: str, payload: dict[str, Any] | None = None
                     ) -> ApproveResult:
        info = await instance_info(agent, args.instance_id)
        return ApproveResult(instance_id=request.instance_id, type=request.type,
                             step=request.step, outcome=outcome, delivered=payload is not None,
                             payload=payload, instance=info, summary=summary)

    if answer is None:
        why = ("The operator allows approvals only from the operator's side "
               "(approvals = operator-only), so no one was asked here" if operator_only
               else "No person could be asked from here")
        return await result("pending_human", (
            f"{why}: nothing was sent and instance {request.instance_id} keeps waiting for "
            f"{request.type!r} (until {request.deadline.isoformat(timespec='seconds')}). "
            f"{how_a_person_answers(request.instance_id)} Check back with get_instance."))
    if answer.action != "accept" or answer.decision is None:
        action = "cancelled" if answer.action == "cancel" else "declined"
        return await result(action, _not_answered(action, request.instance_id))
    current = await approval_request(agent, args.instance_id, args.note, ctx.human_only)
    if current != answer.request:
        return await result("stale", (
            "The instance changed while the person was asked; nothing was sent. Call "
            "approve again if it still waits."))
    decision = answer.decision
    payload = {"approved": decision.approved, "comment": decision.comment, "by": "human"}
    inst = await agent.get(args.instance_id)

    # Sent only to the wait the person was asked about (answer.request.ref), checked in
    # the send's own transaction: no restart, no second answer between.
    if not await inst.send_event_to_wait(answer.request.ref, request.type, payload):
        return await result("stale", (
            "The instance changed while the person was asked; nothing was sent. Call "
            "approve again if it still waits."))
    verdict = "approved" if decision.approved else "rejected"
    return await result(verdict, (
        f"A person {verdict} instance {request.instance_id}; the plan received the "
        f"decision at step {request.step!r}. Their comment, if any, is in payload."),
        payload)


async def _control(agent: Agent, instance_id: str, context: ToolContext | None,
                   action: Callable[[AgentInstance], Awaitable[None]]
                   ) -> tuple[InstanceInfo, str]:
    """Apply a control (pause, resume, terminate); the instance after it, described."""
    inst = await agent.get(instance_id)
    await action(inst)
    info = _info(inst, await inst.status())
    return info, describe_instance(info, (await _context(agent, context)).human_only)


async def handle_pause_instance(agent: Agent, args: PauseInstanceArgs,
                                context: ToolContext | None = None) -> PauseInstanceResult:
    """Pause an instance (a running one pauses after its current step)."""
    info, text = await _control(agent, args.instance_id, context, AgentInstance.pause)
    return PauseInstanceResult(instance=info, summary=text)


async def handle_resume_instance(agent: Agent, args: ResumeInstanceArgs,
                                 context: ToolContext | None = None) -> ResumeInstanceResult:
    """Resume a paused instance."""
    info, text = await _control(agent, args.instance_id, context, AgentInstance.resume)
    return ResumeInstanceResult(instance=info, summary=text)


async def handle_terminate_instance(agent: Agent, args: TerminateInstanceArgs,
                                    context: ToolContext | None = None
                                    ) -> TerminateInstanceResult:
    """Stop an instance for good (restart_instance can run it again)."""
    info, text = await _control(agent, args.instance_id, context, AgentInstance.terminate)
    return TerminateInstanceResult(instance=info, summary=text)


def kept_human_decision(kept: list[StepRecord], human_only: frozenset[str]
                        ) -> StepRecord | None:
    """The first journal entry in ``kept`` that holds a person's decision: a wait that
    consumed a human-only event."""
    for r in kept:
        kept_type = r.result.get("type") if isinstance(r.result, dict) else None
        if (r.kind == "event" and r.status == "ok" and isinstance(kept_type, str)
                and is_human_only(kept_type, human_only)):
            return r
    return None


async def _refuse_replaying_a_human_decision(inst: AgentInstance, from_step: str | None,
                                             human_only: frozenset[str]) -> None:
    """A model must not reuse a person's decision: a restart that keeps one in the
    journal would re-run what follows it (a deploy, a payment) on the old approval, as
    often as the model likes. Restarting at the decision's step or earlier asks again.

    The kept entries are final: every entry before a step that exists in the journal
    has finished, so nothing can change them between this check and the restart.
    """
    if from_step is None:
        return  # from the top: nothing is kept
    history = await inst.history()
    cut = min((r.seq for r in history if r.name == from_step), default=None)
    if cut is None:
        return  # the restart itself says the step is unknown
    found = kept_human_decision([r for r in history if r.seq < cut], human_only)
    if found is not None:
        kept_type = found.result["type"]
        raise InvalidStateError(
            f"restarting instance {inst.id!r} from step {from_step!r} would keep the "
            f"{kept_type!r} decision a person gave at step {found.name!r} and run what "
            f"follows on it again; a model may not reuse a person's decision. Restart from "
            f"step {found.name!r} or earlier (restart_instance with from_step="
            f"{found.name!r}) and the person is asked again. Only an operator can restart "
            f"keeping it: `agentflow restart {inst.id} --from-step {from_step}`.")


async def handle_restart_instance(agent: Agent, args: RestartInstanceArgs,
                                  context: ToolContext | None = None
                                  ) -> RestartInstanceResult:
    """Run an instance again, from the top or from a step, optionally upgraded; never
    keeping a person's decision (see `_refuse_replaying_a_human_decision`)."""
    ctx = await _context(agent, context)
    inst = await agent.get(args.instance_id)
    previous = inst.version
    await _refuse_replaying_a_human_decision(inst, args.from_step, ctx.human_only)
    # The version checked is the version moved to: a plan submitted meanwhile must not
    # slip in between the check and the restart.
    target = (await agent.current_version(inst.plan)).version if args.upgrade else None
    await inst.restart(args.from_step, version=target,
                       by=f"agent {agent.id} (a model-facing tool)")
    info = await instance_info(agent, args.instance_id)
    where = f"from step {args.from_step!r}" if args.from_step else "from the top"
    moved = (f" on version {info.version} (was {previous})" if info.version != previous
             else f" on version {info.version}")
    return RestartInstanceResult(instance=info, previous_version=previous, summary=(
        f"Restarted {where}{moved}. {describe_instance(info, ctx.human_only)}"))


async def handle_get_history(agent: Agent, args: GetHistoryArgs,
                             context: ToolContext | None = None) -> GetHistoryResult:
    """An instance's journal: every step the run reached, with attempts and results."""
    ctx = await _context(agent, context)
    inst = await agent.get(args.instance_id)
    records = await inst.history()
    info = _info(inst, await inst.status())
    page = records[args.offset:args.offset + args.limit]
    steps = [_step_info(r) for r in page]
    has_more = args.offset + len(page) < len(records)
    text = f"{len(records)} step{'s' * (len(records) != 1)} in the journal"
    failed = [r for r in records if r.status == "error"]
    if failed:
        last = failed[-1]
        text += (f"; step {last.name!r} failed after {last.attempts} attempt"
                 f"{'s' * (last.attempts != 1)}: {describe_error(last.error)[:250]}")
    retried = [r for r in records if r.status != "error" and any(
        a.error for a in r.attempt_history)]
    for r in retried[-3:]:
        errors = [a for a in r.attempt_history if a.error]
        err = errors[-1].error or {}
        text += (f"; step {r.name!r} had {len(errors)} failed attempt"
                 f"{'s' * (len(errors) != 1)} (last: {err.get('name')}: "
                 f"{str(err.get('message', ''))[:200]})")
    text += f". {describe_instance(info, ctx.human_only)}"
    logs = recent_logs(records)
    if logs:
        text += " Last printed: " + " | ".join(line[:200] for line in logs[-3:])
    if has_more:
        text += " More steps follow: call again with a larger offset."
    restarts = [RestartInfo(at=r.at, by=r.actor, from_step=r.value.get("from_step")
                            if isinstance(r.value, dict) else None)
                for r in await inst.restarts()]
    if restarts:
        text += (f" Restarted {len(restarts)} time{'s' * (len(restarts) != 1)}, last by "
                 f"{restarts[-1].by}.")
    return GetHistoryResult(instance=info, steps=steps, total_steps=len(records),
                            has_more=has_more, restarts=restarts, summary=text)
