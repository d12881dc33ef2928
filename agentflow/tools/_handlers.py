"""The tool handlers: one per tool, shared by the MCP server and the model adapters.

This module is their face; they live by subject in `_plan_handlers`,
`_instance_handlers` and `_approve_handlers`, on what `_views` shares.

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

from agentflow.tools._approve_handlers import (
    approval_request,
    handle_approve,
    how_a_person_answers,
    kept_human_decision,
)
from agentflow.tools._instance_handlers import (
    PROGRESS_INTERVAL,
    handle_get_history,
    handle_get_instance,
    handle_list_instances,
    handle_list_pending_events,
    handle_pause_instance,
    handle_restart_instance,
    handle_resume_instance,
    handle_send_event,
    handle_start_instance,
    handle_terminate_instance,
    handle_wait_for_instance,
)
from agentflow.tools._plan_handlers import (
    handle_describe_capabilities,
    handle_list_plans,
    handle_submit_plan,
    handle_validate_plan,
)
from agentflow.tools._views import MAX_RESULT_CHARS, instance_info, policy_of

__all__ = [
    "MAX_RESULT_CHARS",
    "PROGRESS_INTERVAL",
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
