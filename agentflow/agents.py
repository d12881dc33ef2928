"""Compatibility face: the agent layer lives in `agentflow.plans`; import from there (or
from `agentflow`). The names importable here before the move keep working."""

from agentflow.errors import PlanNotFoundError
from agentflow.plans._agent import (
    PLAN_WORKFLOW,
    Agent,
    AgentInstance,
    PendingEvent,
    PlanVersion,
    unwrap_row,
    version_of,
)
from agentflow.plans._flow import AgentFlow
from agentflow.plans._invalid import PlanValidationError
from sandbox import Diagnostic, ValidationReport

__all__ = [
    "PLAN_WORKFLOW",
    "Agent",
    "AgentFlow",
    "AgentInstance",
    "Diagnostic",
    "PendingEvent",
    "PlanNotFoundError",
    "PlanValidationError",
    "PlanVersion",
    "ValidationReport",
    "unwrap_row",
    "version_of",
]
