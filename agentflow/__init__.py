"""agentflow: durable plans written by LLM agents.

The durable engine (`Engine`, `run(event, step)`) and its errors are exported here.
See DESIGN.md for the full contract.
"""

from agentflow._durations import RetryPolicy, parse_duration
from agentflow._engine import Engine
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

__all__ = [
    "AgentflowError",
    "Clock",
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
    "NonDeterminismError",
    "NonRetryableError",
    "NotFoundError",
    "RetryPolicy",
    "Step",
    "StepError",
    "StepRecord",
    "SystemClock",
    "UsageError",
    "WaitingOn",
    "WorkflowBinding",
    "WorkflowError",
    "WorkflowNotFoundError",
    "WorkflowTimeoutError",
    "__version__",
    "parse_duration",
]
