"""A rejected plan, as agentflow raises it: an `AgentflowError` and the sandbox's error.

The sandbox never imports agentflow, so its `sandbox.PlanValidationError` cannot derive
from `AgentflowError`. Every place that hands a rejected plan to an agentflow user
compiles through `compile_checked`, which raises this subclass of both instead: ``except
AgentflowError``, ``except InvalidArgumentError`` and ``except
sandbox.PlanValidationError`` all catch it, and ``.report`` keeps the diagnostics.
"""

from __future__ import annotations

import sandbox
from agentflow.errors import InvalidArgumentError

__all__ = ["PlanValidationError", "compile_checked", "plan_filename"]


class PlanValidationError(InvalidArgumentError, sandbox.PlanValidationError):
    """The plan's source failed validation; ``.report`` holds every finding (each with
    a line, a column, a code and a fix hint)."""


def plan_filename(name: str, version: str) -> str:
    """The name a plan version's code carries in tracebacks. Submitting and loading use
    the same one, so the sandbox's compile cache (keyed by source and filename) compiles
    a version once per process, not once per use."""
    return f"<plan {name}@{version}>"


def compile_checked(source: str, *, filename: str) -> sandbox.CompiledPlan:
    """`sandbox.compile_plan`, raising agentflow's `PlanValidationError`."""
    try:
        return sandbox.compile_plan(source, filename=filename)
    except sandbox.PlanValidationError as exc:
        if isinstance(exc, PlanValidationError):
            raise
        raise PlanValidationError(exc.report) from None
