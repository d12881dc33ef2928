from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentflow import AgentFlow
from agentflow.testing import ManualClock


@pytest.fixture
async def af(clock: ManualClock) -> AsyncIterator[AgentFlow]:
    """Agent plans on the in-memory store, run inline (fast; the confined worker has its
    own tests in tests/sandbox and the end-to-end ones here)."""
    flow = AgentFlow("memory://", clock=clock, isolation="inline")
    async with flow:
        yield flow
