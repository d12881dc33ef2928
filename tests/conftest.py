from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


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
