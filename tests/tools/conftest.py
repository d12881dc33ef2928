from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentflow import AgentFlow


@pytest.fixture
async def af() -> AsyncIterator[AgentFlow]:
    """Agent plans on the in-memory store, run inline (the confined worker has its own
    tests; the sync authoring tests use it)."""
    async with AgentFlow("memory://", isolation="inline") as flow:
        yield flow
