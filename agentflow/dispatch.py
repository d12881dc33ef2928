"""Compatibility face: the dynamic dispatch primitives live in `agentflow.plans.dispatch`.
The names importable here before the move keep working."""

from agentflow.plans.dispatch import (
    ENVELOPE_KEY,
    LoadRunner,
    WrappedBinding,
    create_dynamic_entrypoint,
    dispatch_workflow,
    scope_of,
    unwrap,
    wrap_workflow_binding,
)

__all__ = [
    "ENVELOPE_KEY",
    "LoadRunner",
    "WrappedBinding",
    "create_dynamic_entrypoint",
    "dispatch_workflow",
    "scope_of",
    "unwrap",
    "wrap_workflow_binding",
]
