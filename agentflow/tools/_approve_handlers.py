"""The approval tools: what a person is asked (a record read from the store), the
``approve`` tool that asks them and delivers only their decision, and the rule that a
model-facing restart never reuses a person's decision."""

from __future__ import annotations

from typing import Any

from agentflow.errors import InvalidStateError
from agentflow.models import StepRecord
from agentflow.plans import Agent, AgentInstance
from agentflow.tools._approval import ApprovalRequest, approval_records
from agentflow.tools._context import ToolContext, is_human_only
from agentflow.tools._models import ApproveArgs, ApproveResult
from agentflow.tools._views import instance_info, policy_of, tool_context

__all__ = [
    "approval_request",
    "handle_approve",
    "how_a_person_answers",
    "kept_human_decision",
    "open_approvals",
    "refuse_replaying_a_human_decision",
]


def how_a_person_answers(instance_id: str) -> str:
    """The operator-side ways to answer an approval, for people and docs."""
    return (f"A person answers on the operator's side with `agentflow approve {instance_id}`"
            f" or `agentflow reject {instance_id}`, or from Python with "
            f"`agent.send_event({instance_id!r}, 'approval', {{'approved': True, "
            f"'comment': '...', 'by': 'human'}})`.")


async def approval_request(agent: Agent, instance_id: str, note: str,
                           human_only: frozenset[str], step: str | None = None, *,
                           first: bool = False) -> ApprovalRequest:
    """What a person would be asked about this instance, read from the store: the wait,
    the params and the plan source from the wait onward (see `ApprovalRequest`).

    Args:
        step: the wait to ask about, when the instance waits for several human-only
            events at once (a ``gather`` of two approvals).
        first: without ``step``, take the earliest of several (a surface that shows one
            at a time and answers exactly the one it showed) instead of refusing.

    Raises:
        InstanceNotFoundError: not this agent's instance.
        InvalidStateError: it does not wait for a human-only event (at ``step``), or
            waits for several and neither ``step`` nor ``first`` chooses one.
    """
    inst = await agent.get(instance_id)
    row = await agent.flow.engine.store.get_instance(inst.id)  # one read for all of it
    records = [] if row is None else [
        r for r in await approval_records(agent.flow.engine.store, row, note)
        if is_human_only(r.type, human_only)]
    if step is not None:
        chosen = [r for r in records if r.step == step]
        if len(chosen) != 1:
            raise InvalidStateError(
                f"instance {instance_id!r} has {'several' if chosen else 'no'} open "
                f"approval waits at step {step!r}; nothing was asked or sent. "
                f"{open_approvals(records)}")
        return chosen[0]
    if len(records) > 1 and not first:
        raise InvalidStateError(
            f"instance {instance_id!r} waits for {len(records)} approvals at once; say "
            f"which one this is about with step (nothing was asked or sent). "
            f"{open_approvals(records)}")
    record = records[0] if records else None
    if record is None:
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


def open_approvals(records: list[ApprovalRequest]) -> str:
    """The open approval waits, for a refusal that asks to choose one."""
    if not records:
        return "It has no open approval wait now."
    return "Its open approval waits: " + ", ".join(
        f"step {r.step!r} ({r.type!r}, until {r.deadline.isoformat(timespec='seconds')})"
        for r in records) + "."


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
    ctx = await tool_context(agent, context)
    policy = await policy_of(agent)
    request = await approval_request(agent, args.instance_id, args.note, ctx.human_only,
                                     args.step)
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
    current = await approval_request(agent, args.instance_id, args.note, ctx.human_only,
                                     args.step)
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


async def refuse_replaying_a_human_decision(inst: AgentInstance, from_step: str | None,
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
