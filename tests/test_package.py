"""The public face of the package and the layering of DESIGN.md section 1."""

from __future__ import annotations

import json
import subprocess
import sys

import agentflow


def test_exported_names_are_pinned() -> None:
    assert sorted(agentflow.__all__) == sorted([
        "AgentflowError", "Change", "Clock", "Engine", "EngineNotStartedError", "Event", "Instance",
        "InstanceNotFoundError", "InstanceStatus", "InvalidArgumentError", "InvalidStateError",
        "LimitExceededError", "ManualClock", "NonDeterminismError", "NonRetryableError",
        "NotFoundError", "Quotas", "RetryPolicy", "Step", "StepError", "StepRecord", "SystemClock",
        "UsageError", "WaitingOn", "WorkflowBinding", "WorkflowError", "WorkflowNotFoundError",
        "WorkflowTimeoutError", "__version__", "parse_duration",
        # The agent layer, loaded lazily so that the engine never imports the sandbox.
        "Agent", "AgentFlow", "AgentInstance", "Diagnostic", "MissingDispatcherMetadataError",
        "PendingEvent", "PlanNotFoundError", "PlanValidationError", "PlanVersion",
        "ValidationReport", "create_dynamic_entrypoint", "dispatch_workflow",
        "wrap_workflow_binding",
        # Running on its own: schedules, retention, the sync facade (lazy).
        "PruneReport", "Schedule", "ScheduleNotFoundError", "SyncAgent", "SyncAgentFlow",
        "SyncInstance",
    ])
    for name in agentflow.__all__:
        assert hasattr(agentflow, name), name


def modules_after_import(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys, json\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_engine_imports_no_sandbox_mcp_or_model_sdks() -> None:
    loaded = modules_after_import("import agentflow, agentflow.testing, agentflow.store")
    for banned in ("sandbox", "mcp", "mcp_server", "openai", "anthropic", "RestrictedPython",
                   "psycopg", "psycopg_pool"):
        assert not any(m == banned or m.startswith(banned + ".") for m in loaded), banned


def test_errors_split_by_who_catches_them() -> None:
    from agentflow import errors

    assert issubclass(errors.Suspend, BaseException)
    assert not issubclass(errors.Suspend, Exception)  # `except Exception` cannot swallow it
    assert issubclass(errors.InvalidArgumentError, ValueError)
    assert issubclass(errors.InstanceNotFoundError, LookupError)
    assert issubclass(errors.WorkflowTimeoutError, errors.WorkflowError)
    assert issubclass(errors.NonDeterminismError, errors.WorkflowError)
    assert not issubclass(errors.NonRetryableError, errors.WorkflowError)
