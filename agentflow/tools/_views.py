"""What the tool handlers share: the front end's context with the database's policy,
and how plans, instances, steps and diagnostics are shown to a model."""

from __future__ import annotations

import dataclasses
import json

from agentflow.models import InstanceStatus, StepRecord
from agentflow.plans import Agent, AgentInstance, AgentInstanceStatus, PlanVersion
from agentflow.policy import ApprovalPolicy, OperatorPolicy
from agentflow.tools._context import ToolContext
from agentflow.tools._models import DiagnosticInfo, InstanceInfo, PlanInfo, StepInfo
from sandbox import ValidationReport

__all__ = ["DEFAULT_CONTEXT", "MAX_RESULT_CHARS", "diagnostics_of", "info_of", "instance_info",
           "plan_info", "policy_of", "step_info", "tool_context"]

DEFAULT_CONTEXT = ToolContext()
#: A step result longer than this (as JSON) is shown shortened in ``get_history``.
MAX_RESULT_CHARS = 4000


async def policy_of(agent: Agent) -> ApprovalPolicy:
    """The operator's approval policy in the agent's database."""
    return await OperatorPolicy(agent.flow.engine.store).read()


async def tool_context(agent: Agent, context: ToolContext | None) -> ToolContext:
    """The front end's context, with the database's human-only types added: a front
    end may add types, never take the operator's away."""
    ctx = context or DEFAULT_CONTEXT
    policy = await policy_of(agent)
    return dataclasses.replace(ctx, human_only=ctx.human_only | policy.human_only)


def info_of(inst: AgentInstance | AgentInstanceStatus, status: InstanceStatus
            ) -> InstanceInfo:
    return InstanceInfo(id=status.id, plan=inst.plan, version=inst.version,
                        status=status.status, output=status.output, error=status.error,
                        waiting_on=status.waiting_on, waits=list(status.waits),
                        note=status.note, created_at=status.created_at,
                        updated_at=status.updated_at)


async def instance_info(agent: Agent, instance_id: str) -> InstanceInfo:
    """The agent's instance as the tools show it (InstanceNotFoundError otherwise)."""
    inst = await agent.get(instance_id)
    return info_of(inst, await inst.status())


def plan_info(version: PlanVersion) -> PlanInfo:
    return PlanInfo(name=version.name, version=version.version,
                    created_at=version.created_at, current=version.current)


def diagnostics_of(report: ValidationReport) -> list[DiagnosticInfo]:
    return [DiagnosticInfo(line=d.line, col=d.col, code=d.code, message=d.message,
                           hint=d.hint) for d in report.diagnostics]


def step_info(record: StepRecord) -> StepInfo:
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
