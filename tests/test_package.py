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
        "SyncInstance", "SyncSchedules", "AgentSchedules",
        # Models that public methods return: a step's attempts, an agent's instance
        # status, a recorded operator action.
        "AttemptRecord", "AgentInstanceStatus", "OperatorAction",
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


def test_the_agent_layer_moved_and_the_old_imports_still_work() -> None:
    """The agent layer lives in agentflow.plans; agentflow.agents, agentflow.dispatch
    and agentflow._apps stay as faces over it, naming the very same objects."""
    import agentflow.agents as agents
    import agentflow.dispatch as dispatch
    import agentflow.plans as plans
    import agentflow.plans.dispatch as plans_dispatch
    from agentflow import _apps

    old_agents = ["PLAN_WORKFLOW", "Agent", "AgentFlow", "AgentInstance", "Diagnostic",
                  "PendingEvent", "PlanNotFoundError", "PlanValidationError", "PlanVersion",
                  "ValidationReport", "unwrap_row", "version_of"]
    for name in old_agents:
        assert getattr(agents, name) is getattr(plans._agent if name == "unwrap_row"
                                                else plans, name), name
    old_dispatch = ["ENVELOPE_KEY", "LoadRunner", "WrappedBinding",
                    "create_dynamic_entrypoint", "dispatch_workflow", "scope_of", "unwrap",
                    "wrap_workflow_binding"]
    for name in old_dispatch:
        assert getattr(dispatch, name) is getattr(plans_dispatch, name), name
    assert _apps.load_app is plans.load_app and _apps.adopt_apps is plans.adopt_apps
    assert agentflow.AgentFlow is plans.AgentFlow
    assert plans.AgentFlow.__module__ == "agentflow.plans._flow"
    assert set(plans.__all__) <= set(dir(plans))
    assert set(agentflow.__all__) <= set(dir(agentflow))


def _returned_models(owner: type) -> dict[str, type]:
    """The pydantic models and dataclasses a public method of ``owner`` returns, by
    name (read from the method's return annotation and the names its module holds)."""
    import dataclasses
    import inspect
    import re

    from pydantic import BaseModel

    found: dict[str, type] = {}
    for attr, member in inspect.getmembers(owner):
        if attr.startswith("_") or not callable(member):
            continue
        try:
            annotation = inspect.signature(member).return_annotation
        except (TypeError, ValueError):
            continue
        text = annotation if isinstance(annotation, str) else repr(annotation)
        module = sys.modules.get(getattr(member, "__module__", "") or "")
        for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text):
            value = getattr(module, name, None)
            if (isinstance(value, type) and value.__module__.startswith("agentflow")
                    and not value.__module__.startswith("agentflow.store")  # its own face
                    and (issubclass(value, BaseModel) or dataclasses.is_dataclass(value))):
                found[name] = value
    return found


def test_every_model_a_public_method_returns_is_exported() -> None:
    """``Instance.history()`` hands back `StepRecord`s holding `AttemptRecord`s,
    ``Agent.instances()`` `AgentInstanceStatus`es, ``restarts()`` `OperatorAction`s: a
    user who annotates their code must be able to import each from ``agentflow``."""
    from pydantic import BaseModel

    exported = {name: getattr(agentflow, name) for name in agentflow.__all__}
    owners = [v for v in exported.values() if isinstance(v, type)]
    missing: dict[str, str] = {}
    seen: set[type] = set()
    while owners:
        owner = owners.pop()
        if owner in seen:
            continue
        seen.add(owner)
        models = _returned_models(owner)
        if issubclass(owner, BaseModel):  # the models its fields hold
            for field in owner.model_fields.values():
                for arg in [field.annotation, *getattr(field.annotation, "__args__", ())]:
                    if isinstance(arg, type) and issubclass(arg, BaseModel) and (
                            arg.__module__.startswith("agentflow")
                            and not arg.__module__.startswith("agentflow.store")):
                        models[arg.__name__] = arg
        for name, model in models.items():
            if exported.get(name) is not model:
                missing[name] = f"{owner.__name__} returns it"
            owners.append(model)
    assert not missing, missing
