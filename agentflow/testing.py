"""Test doubles for users of agentflow: a clock that jumps, and an in-memory store.

Example:
    from agentflow.testing import ManualClock, memory_engine

    clock = ManualClock()
    engine = memory_engine(clock=clock)

    @engine.workflow("nap")
    async def nap(event, step):
        await step.sleep("nap", "3 days")
        return "rested"

    async with engine:
        inst = await engine.binding("nap").create()
        assert (await inst.wait()).status == "waiting"
        clock.advance("3 days")
        assert (await inst.wait()).output == "rested"   # in milliseconds
"""

from __future__ import annotations

from typing import Any

from agentflow._engine import Engine
from agentflow.clock import Clock, ManualClock
from agentflow.store import SQLiteStore

__all__ = ["ManualClock", "MemoryStore", "memory_engine"]


class MemoryStore(SQLiteStore):
    """The SQLite store on a private in-memory database: the same semantics as the file
    store, nothing on disk, gone when closed."""

    def __init__(self) -> None:
        super().__init__(":memory:")


def memory_engine(*, clock: Clock | None = None, **options: Any) -> Engine:
    """An `Engine` on a fresh `MemoryStore` (``Engine("memory://", ...)``)."""
    return Engine(MemoryStore(), clock=clock, **options)
