"""The instance tools: start, look at, wait for, signal and steer an agent's instances.

Human-only event types (the database's policy, plus `ToolContext.human_only`) are
refused by ``send_event``, and ``restart_instance`` never keeps a person's decision in
the kept journal (see `refuse_replaying_a_human_decision`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from agentflow.errors import describe_error
from agentflow.plans import Agent, AgentInstance
from agentflow.tools._activity import failed_attempts, recent_logs
from agentflow.tools._approve_handlers import refuse_replaying_a_human_decision
from agentflow.tools._context import HumanOnlyEventError, ToolContext, is_human_only
from agentflow.tools._models import (
    GetHistoryArgs,
    GetHistoryResult,
    GetInstanceArgs,
    GetInstanceResult,
    InstanceInfo,
    ListInstancesArgs,
    ListInstancesResult,
    ListPendingEventsArgs,
    ListPendingEventsResult,
    PauseInstanceArgs,
    PauseInstanceResult,
    PendingEventInfo,
    RestartInfo,
    RestartInstanceArgs,
    RestartInstanceResult,
    ResumeInstanceArgs,
    ResumeInstanceResult,
    SendEventArgs,
    SendEventResult,
    StartInstanceArgs,
    StartInstanceResult,
    TerminateInstanceArgs,
    TerminateInstanceResult,
    WaitForInstanceArgs,
    WaitForInstanceResult,
)
from agentflow.tools._summaries import describe_instance
from agentflow.tools._views import info_of, instance_info, step_info, tool_context

__all__ = ["handle_get_history", "handle_get_instance", "handle_list_instances",
           "handle_list_pending_events", "handle_pause_instance", "handle_restart_instance",
           "handle_resume_instance", "handle_send_event", "handle_start_instance",
           "handle_terminate_instance", "handle_wait_for_instance"]

#: Seconds between progress reports while ``wait_for_instance`` waits.
PROGRESS_INTERVAL = 1.0


async def handle_start_instance(agent: Agent, args: StartInstanceArgs,
                                context: ToolContext | None = None) -> StartInstanceResult:
    """Start an instance of a plan's current version."""
    ctx = await tool_context(agent, context)
    inst = await agent.start(args.plan, params={} if args.params is None else args.params,
                             id=args.id)
    info = info_of(inst, await inst.status())
    return StartInstanceResult(instance=info, summary=(
        f"Started. {describe_instance(info, ctx.human_only)}"))


async def handle_get_instance(agent: Agent, args: GetInstanceArgs,
                              context: ToolContext | None = None) -> GetInstanceResult:
    """One instance's status, output or error (with its plan line and step), what it
    waits on, the last lines it printed and its failed attempts."""
    ctx = await tool_context(agent, context)
    inst = await agent.get(args.instance_id)
    info = info_of(inst, await inst.status())
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


async def handle_list_instances(agent: Agent, args: ListInstancesArgs,
                                context: ToolContext | None = None) -> ListInstancesResult:
    """The agent's instances, newest first."""
    statuses = [str(s) for s in args.status] if args.status else None
    found = await agent.instances(statuses, limit=args.limit + 1, offset=args.offset)
    has_more = len(found) > args.limit
    infos = [info_of(s, s) for s in found[:args.limit]]  # the plan and version come along
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
    ctx = await tool_context(agent, context)
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
    info = info_of(inst, status)
    text = describe_instance(info, ctx.human_only)
    if not settled:
        text = f"Still busy after {waited:.0f} s. {text}"
    return WaitForInstanceResult(instance=info, settled=settled, waited_seconds=waited,
                                 summary=text)


async def handle_send_event(agent: Agent, args: SendEventArgs,
                            context: ToolContext | None = None) -> SendEventResult:
    """Send an event that is not human-only to one of the agent's instances."""
    ctx = await tool_context(agent, context)
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
    info = info_of(inst, await inst.status())
    what = ("It was waiting for it and runs on." if woke else
            "It is buffered until the plan waits for this type.")
    return SendEventResult(instance_id=inst.id, type=args.type, woke=woke, instance=info,
                           summary=f"Sent {args.type!r} to {inst.id}. {what}")


async def handle_list_pending_events(agent: Agent, args: ListPendingEventsArgs,
                                     context: ToolContext | None = None
                                     ) -> ListPendingEventsResult:
    """The agent's instances that wait for an event, marked when only a person answers."""
    ctx = await tool_context(agent, context)
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


async def _control(agent: Agent, instance_id: str, context: ToolContext | None,
                   action: Callable[[AgentInstance], Awaitable[None]]
                   ) -> tuple[InstanceInfo, str]:
    """Apply a control (pause, resume, terminate); the instance after it, described."""
    inst = await agent.get(instance_id)
    await action(inst)
    info = info_of(inst, await inst.status())
    return info, describe_instance(info, (await tool_context(agent, context)).human_only)


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


async def handle_restart_instance(agent: Agent, args: RestartInstanceArgs,
                                  context: ToolContext | None = None
                                  ) -> RestartInstanceResult:
    """Run an instance again, from the top or from a step, optionally upgraded; never
    keeping a person's decision (see `refuse_replaying_a_human_decision`)."""
    ctx = await tool_context(agent, context)
    inst = await agent.get(args.instance_id)
    previous = inst.version
    await refuse_replaying_a_human_decision(inst, args.from_step, ctx.human_only)
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
    ctx = await tool_context(agent, context)
    inst = await agent.get(args.instance_id)
    records = await inst.history()
    info = info_of(inst, await inst.status())
    page = records[args.offset:args.offset + args.limit]
    steps = [step_info(r) for r in page]
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
