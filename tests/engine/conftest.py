from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agentflow import Engine
from agentflow.testing import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_800_000_000.0)


@pytest.fixture
async def engine(clock: ManualClock) -> AsyncIterator[Engine]:
    """An engine on the in-memory store with a manual clock. Register workflows on it
    before using `engine.binding`; it is already started."""
    eng = Engine("memory://", clock=clock)
    async with eng:
        yield eng


@pytest.fixture
def db_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/agentflow.db"
