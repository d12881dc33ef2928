"""``--app module:attribute``: a host's own workflows and capability grants, loaded into
a process that runs agentflow (``agentflow worker``, ``agentflow-mcp``).

Grants are process configuration, never stored: every process that runs an agent's
plans must be given the same grants, or a plan's capability calls fail there.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from agentflow._engine import Engine
from agentflow.errors import InvalidArgumentError

if TYPE_CHECKING:
    from agentflow.agents import AgentFlow

__all__ = ["adopt_apps", "load_app"]


def load_app(spec: str) -> Engine | AgentFlow:
    """Import ``module:attribute`` and return the `Engine` or `AgentFlow` it names."""
    from agentflow.agents import AgentFlow

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidArgumentError(f"--app {spec!r} must look like package.module:engine")
    if os.getcwd() not in sys.path:  # like uvicorn: apps in the working directory import
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgumentError(f"--app {spec!r}: cannot import {module_name!r}: {exc}"
                                   ) from None
    app = getattr(module, attr, None)
    if app is None:
        raise InvalidArgumentError(f"--app {spec!r}: module {module_name!r} has no "
                                   f"attribute {attr!r}")
    if not isinstance(app, Engine | AgentFlow):
        raise InvalidArgumentError(f"--app {spec!r}: {attr!r} is neither an agentflow Engine "
                                   "nor an AgentFlow")
    return app


def adopt_apps(flow: AgentFlow, apps: Iterable[Engine | AgentFlow]) -> None:
    """Give ``flow`` the apps' workflows, and an `AgentFlow`'s agents' grants."""
    from agentflow.agents import AgentFlow

    for app in apps:
        if isinstance(app, AgentFlow):  # its agents' capability grants apply here too
            flow._grants.update(app._grants)
            app = app.engine
        for name in app.workflows:
            if name not in flow.engine.workflows:
                flow.engine.register(name, app._workflows[name])
