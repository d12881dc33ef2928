"""agentflow's agent API as tools: one definition for every front end.

Each tool has a typed pydantic argument model, a structured result model (with a plain
``summary`` a model reads first) and one handler, ``async (agent, args, context=None)``.
The MCP server (``mcp_server``) and the model adapters (OpenAI, Anthropic) all use
`TOOLS`, so the rules hold the same everywhere, in particular the human-only event
rule: ``send_event`` refuses the types in `ToolContext.human_only` (by default
``approval``), and ``approve`` delivers a decision only when a person made it through
`ToolContext.ask_human`.

This package imports neither ``mcp`` nor any model SDK.

Example:
    from agentflow.tools import TOOLS, call_tool

    outcome = await call_tool(agent, "validate_plan", {"source": source})
    print(outcome.text)             # a summary, or "Error: ..."
    schema = TOOLS["validate_plan"].args_model.model_json_schema()
"""

from agentflow.tools._approval import render_approval
from agentflow.tools._author import (
    AuthoringResult,
    ToolCallRecord,
    author_plan,
    author_plan_async,
)
from agentflow.tools._context import (
    DEFAULT_HUMAN_ONLY,
    ApprovalRequest,
    AskHuman,
    HumanAnswer,
    HumanOnlyEventError,
    ProgressCallback,
    ToolContext,
    is_human_only,
)
from agentflow.tools._handlers import (
    approval_request,
    how_a_person_answers,
    instance_info,
    kept_human_decision,
    policy_of,
)
from agentflow.tools._models import (
    DiagnosticInfo,
    HumanDecision,
    InstanceInfo,
    PendingEventInfo,
    PlanInfo,
    StepInfo,
    ToolArgs,
    ToolResult,
)
from agentflow.tools._prompts import load_prompt
from agentflow.tools._registry import (
    TOOLS,
    ToolOutcome,
    ToolSpec,
    call_tool,
    format_validation_error,
)
from agentflow.tools._toolbox import AUTHORING_TOOLS, Toolbox

__all__ = [
    "AUTHORING_TOOLS",
    "DEFAULT_HUMAN_ONLY",
    "TOOLS",
    "ApprovalRequest",
    "AskHuman",
    "AuthoringResult",
    "DiagnosticInfo",
    "HumanAnswer",
    "HumanDecision",
    "HumanOnlyEventError",
    "InstanceInfo",
    "PendingEventInfo",
    "PlanInfo",
    "ProgressCallback",
    "StepInfo",
    "ToolArgs",
    "ToolCallRecord",
    "ToolContext",
    "ToolOutcome",
    "ToolResult",
    "ToolSpec",
    "Toolbox",
    "approval_request",
    "author_plan",
    "author_plan_async",
    "call_tool",
    "format_validation_error",
    "how_a_person_answers",
    "instance_info",
    "is_human_only",
    "kept_human_decision",
    "load_prompt",
    "policy_of",
    "render_approval",
]
