"""The agent layer: agents author, start and steer durable plans that run in the sandbox.

Public face over private modules:

    _flow.py     `AgentFlow` (one database, grants, the compiled-plan cache, in_thread)
                 and ``--app`` loading (`load_app`, `adopt_apps`)
    _agent.py    `Agent` (one agent's plans and instances) and `AgentInstance`
    _runner.py   the bridge to the sandbox: a plan run and the host side of its calls
    _schedules.py  an agent's schedules (`AgentSchedules`) over the engine's
    _sync.py     the synchronous facade `AgentFlow.in_thread()` yields
    dispatch.py  the Dynamic-Workflows primitives (a public module of its own)

Names load lazily, like the package root's: ``agentflow.plans.dispatch`` (which the CLI
uses) must not pull in the sandbox. The ``TYPE_CHECKING`` block gives type checkers the
real types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentflow._lazy import lazy_loader

if TYPE_CHECKING:
    from agentflow.errors import PlanNotFoundError
    from agentflow.plans._agent import (
        PLAN_WORKFLOW,
        Agent,
        AgentInstance,
        AgentInstanceStatus,
        PendingEvent,
        PlanVersion,
        version_of,
    )
    from agentflow.plans._flow import AgentFlow, adopt_apps, load_app
    from agentflow.plans._invalid import PlanValidationError
    from agentflow.plans._schedules import AgentSchedules
    from agentflow.plans._sync import SyncAgent, SyncAgentFlow, SyncInstance, SyncSchedules
    from sandbox import Diagnostic, ValidationReport

__all__ = [
    "PLAN_WORKFLOW",
    "Agent",
    "AgentFlow",
    "AgentInstance",
    "AgentInstanceStatus",
    "AgentSchedules",
    "Diagnostic",
    "PendingEvent",
    "PlanNotFoundError",
    "PlanValidationError",
    "PlanVersion",
    "SyncAgent",
    "SyncAgentFlow",
    "SyncInstance",
    "SyncSchedules",
    "ValidationReport",
    "adopt_apps",
    "load_app",
    "version_of",
]

_LAZY = {
    "PLAN_WORKFLOW": "agentflow.plans._agent",
    "Agent": "agentflow.plans._agent",
    "AgentInstance": "agentflow.plans._agent",
    "AgentInstanceStatus": "agentflow.plans._agent",
    "PendingEvent": "agentflow.plans._agent",
    "PlanNotFoundError": "agentflow.errors",
    "PlanVersion": "agentflow.plans._agent",
    "version_of": "agentflow.plans._agent",
    "AgentFlow": "agentflow.plans._flow",
    "adopt_apps": "agentflow.plans._flow",
    "load_app": "agentflow.plans._flow",
    "Diagnostic": "sandbox",
    "PlanValidationError": "agentflow.plans._invalid",
    "ValidationReport": "sandbox",
    "AgentSchedules": "agentflow.plans._schedules",
    "SyncAgent": "agentflow.plans._sync",
    "SyncAgentFlow": "agentflow.plans._sync",
    "SyncInstance": "agentflow.plans._sync",
    "SyncSchedules": "agentflow.plans._sync",
}


__getattr__, __dir__ = lazy_loader(__name__, _LAZY, globals())
