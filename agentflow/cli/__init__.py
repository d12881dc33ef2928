"""The ``agentflow`` command line."""

from agentflow.cli._main import main

__all__ = ["main"]
