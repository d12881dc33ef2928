"""Compatibility face: ``--app`` loading moved to `agentflow.plans` (`load_app`,
`adopt_apps`); kept so that imports of the old place keep working."""

from agentflow.plans._flow import adopt_apps, load_app

__all__ = ["adopt_apps", "load_app"]
