"""Compatibility face: the agent layer lives in `agentflow.plans`; import from there (or
from `agentflow`). The names importable here before the move keep working."""

from agentflow.plans import *  # noqa: F403
from agentflow.plans import __all__ as _face
from agentflow.plans._agent import unwrap_row

__all__ = [*_face, "unwrap_row"]
