"""agentflow: durable plans written by LLM agents.

The durable engine (`Engine`, `run(event, step)`) and its errors are exported here.
The README has the contract: the API, what the engine guarantees, and its limits.
"""

from agentflow._durations import RetryPolicy, parse_duration
from agentflow._engine import Engine
from agentflow._feed import Change
from agentflow._instance import Instance, WorkflowBinding
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
    StepError,
    UsageError,
    WorkflowError,
    WorkflowNotFoundError,
    WorkflowTimeoutError,
)
from agentflow.models import Event, InstanceStatus, StepRecord, WaitingOn

__version__ = "0.1.0"

# The agent layer imports the sandbox; load it only when asked for, so that importing the
# engine stays light and never pulls in RestrictedPython.
_LAZY = {
    "AgentFlow": "agentflow.plans",
    "Agent": "agentflow.plans",
    "AgentInstance": "agentflow.plans",
    "PlanVersion": "agentflow.plans",
    "PendingEvent": "agentflow.plans",
    "PlanNotFoundError": "agentflow.plans",
    "PlanValidationError": "agentflow.plans",
    "ValidationReport": "agentflow.plans",
    "Diagnostic": "agentflow.plans",
    "wrap_workflow_binding": "agentflow.plans.dispatch",
    "create_dynamic_entrypoint": "agentflow.plans.dispatch",
    "dispatch_workflow": "agentflow.plans.dispatch",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentflow' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

__all__ = [
    "Agent",
    "AgentFlow",
    "AgentInstance",
    "AgentflowError",
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
    "PendingEvent",
    "PlanNotFoundError",
    "PlanValidationError",
    "PlanVersion",
    "RetryPolicy",
    "Step",
    "StepError",
    "StepRecord",
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
