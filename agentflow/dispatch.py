"""Compatibility face: the dynamic dispatch primitives live in `agentflow.plans.dispatch`.
The names importable here before the move keep working."""

from agentflow.plans.dispatch import *  # noqa: F403
from agentflow.plans.dispatch import __all__ as _face
from agentflow.plans.dispatch import unwrap

__all__ = [*_face, "unwrap"]
