"""agentflow: durable plans written by LLM agents.

The durable engine (`Engine`, `run(event, step)`) and its errors are exported here, and
the agent layer (`AgentFlow`, `Agent`, ...; the `agentflow.plans` subpackage) and the
dynamic dispatch primitives (`agentflow.plans.dispatch`) too. The README has the
contract: the API, what the engine guarantees, and its limits.
"""

from typing import TYPE_CHECKING

from agentflow._durations import RetryPolicy, parse_duration
from agentflow._engine import Engine
from agentflow._feed import Change
from agentflow._instance import Instance, WorkflowBinding
from agentflow._lazy import lazy_loader
from agentflow._limits import Quotas
from agentflow._retention import PruneReport
from agentflow._schedules import Schedule
from agentflow._step import Step
from agentflow.clock import Clock, ManualClock, SystemClock
from agentflow.errors import (
    AgentflowError,
    EngineNotStartedError,
    InstanceNotFoundError,
    InvalidArgumentError,
    InvalidStateError,
    LimitExceededError,
    MissingDispatcherMetadataError,
    NonDeterminismError,
    NonRetryableError,
    NotFoundError,
    PlanNotFoundError,
    ScheduleNotFoundError,
    StepError,
    UsageError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowTimeoutError,
)
from agentflow.models import AttemptRecord, Event, InstanceStatus, StepRecord, WaitingOn
from agentflow.policy import OperatorAction

if TYPE_CHECKING:  # the lazy names below, with their real types for mypy and pyright
    from agentflow.plans import (
        Agent,
        AgentFlow,
        AgentInstance,
        AgentInstanceStatus,
        AgentSchedules,
        Diagnostic,
        PendingEvent,
        PlanValidationError,
        PlanVersion,
        SyncAgent,
        SyncAgentFlow,
        SyncInstance,
        SyncSchedules,
        ValidationReport,
    )
    from agentflow.plans.dispatch import (
        create_dynamic_entrypoint,
        dispatch_workflow,
        wrap_workflow_binding,
    )

__version__ = "0.1.0"

# The agent layer imports the sandbox; load it only when asked for, so that importing the
# engine stays light and never pulls in RestrictedPython.
_LAZY = {
    "AgentFlow": "agentflow.plans",
    "Agent": "agentflow.plans",
    "AgentInstance": "agentflow.plans",
    "AgentInstanceStatus": "agentflow.plans",
    "AgentSchedules": "agentflow.plans",
    "PlanVersion": "agentflow.plans",
    "PendingEvent": "agentflow.plans",
    "PlanValidationError": "agentflow.plans",
    "ValidationReport": "agentflow.plans",
    "Diagnostic": "agentflow.plans",
    "SyncAgentFlow": "agentflow.plans",
    "SyncAgent": "agentflow.plans",
    "SyncInstance": "agentflow.plans",
    "SyncSchedules": "agentflow.plans",
    "wrap_workflow_binding": "agentflow.plans.dispatch",
    "create_dynamic_entrypoint": "agentflow.plans.dispatch",
    "dispatch_workflow": "agentflow.plans.dispatch",
}


__getattr__, __dir__ = lazy_loader(__name__, _LAZY, globals())

__all__ = [
    "Agent",
    "AgentFlow",
    "AgentInstance",
    "AgentInstanceStatus",
    "AgentSchedules",
    "AgentflowError",
    "AttemptRecord",
    "Change",
    "Clock",
    "Diagnostic",
    "Engine",
    "EngineNotStartedError",
    "Event",
    "Instance",
    "InstanceNotFoundError",
    "InstanceStatus",
    "InvalidArgumentError",
    "InvalidStateError",
    "LimitExceededError",
    "ManualClock",
    "MissingDispatcherMetadataError",
    "NonDeterminismError",
    "NonRetryableError",
    "NotFoundError",
    "OperatorAction",
    "PendingEvent",
    "PlanNotFoundError",
    "PlanValidationError",
    "PlanVersion",
    "PruneReport",
    "Quotas",
    "RetryPolicy",
    "Schedule",
    "ScheduleNotFoundError",
    "Step",
    "StepError",
    "StepRecord",
    "SyncAgent",
    "SyncAgentFlow",
    "SyncInstance",
    "SyncSchedules",
    "SystemClock",
    "UsageError",
    "ValidationReport",
    "WaitingOn",
    "WorkflowBinding",
    "WorkflowError",
    "WorkflowNotFoundError",
    "WorkflowTimeoutError",
    "__version__",
    "create_dynamic_entrypoint",
    "dispatch_workflow",
    "parse_duration",
    "wrap_workflow_binding",
]
