"""The plan tools: validate, submit and list plans, and what `env` holds for them."""

from __future__ import annotations

from agentflow.plans import Agent, PlanValidationError
from agentflow.tools._context import ToolContext
from agentflow.tools._models import (
    CapabilityInfo,
    DescribeCapabilitiesArgs,
    DescribeCapabilitiesResult,
    ListPlansArgs,
    ListPlansResult,
    SubmitPlanArgs,
    SubmitPlanResult,
    ValidatePlanArgs,
    ValidatePlanResult,
)
from agentflow.tools._summaries import describe_diagnostics
from agentflow.tools._views import diagnostics_of, plan_info

__all__ = ["handle_describe_capabilities", "handle_list_plans", "handle_submit_plan",
           "handle_validate_plan"]


async def handle_validate_plan(agent: Agent, args: ValidatePlanArgs,
                               context: ToolContext | None = None) -> ValidatePlanResult:
    """Check a plan without storing it."""
    diagnostics = diagnostics_of(agent.validate(args.source))
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
        diagnostics = diagnostics_of(exc.report)
    else:
        return SubmitPlanResult(ok=True, plan=plan_info(version), diagnostics=[],
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
        plans = [plan_info(v) for v in versions]
        current = next((p.version for p in plans if p.current), plans[-1].version)
        return ListPlansResult(plans=plans, summary=(
            f"Plan {args.name!r} has {len(plans)} version{'s' * (len(plans) > 1)}; the "
            f"current one is {current}."))
    plans = [plan_info(v) for v in await agent.plans()]
    if not plans:
        return ListPlansResult(plans=[], summary="No plans yet: write one, validate_plan, "
                                                 "then submit_plan.")
    names = ", ".join(p.name for p in plans)
    return ListPlansResult(plans=plans, summary=f"{len(plans)} plan"
                                                f"{'s' * (len(plans) > 1)}: {names}.")


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
