from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from agentflow import Engine
from agentflow.testing import ManualClock


async def eventually(predicate: Callable[[], Awaitable[Any] | Any], *, timeout: float = 10.0,
                     interval: float = 0.01, what: str = "condition") -> Any:
    """Wait until ``predicate()`` is truthy (sync or async), with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


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
