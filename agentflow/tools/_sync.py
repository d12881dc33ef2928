"""Sync front ends call the async agent API on the loop its AgentFlow runs on."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from agentflow.errors import UsageError
from agentflow.plans import Agent

__all__ = ["as_agent", "run_sync", "sync_loop"]

T = TypeVar("T")


def as_agent(agent: Any) -> Agent:
    """The async `Agent` behind what a caller passed: an `Agent`, or the `SyncAgent`
    that ``AgentFlow.in_thread()`` hands out."""
    from agentflow.plans._sync import SyncAgent

    return agent.aio if isinstance(agent, SyncAgent) else agent


def sync_loop(agent: Agent) -> asyncio.AbstractEventLoop:
    """The loop sync code in this thread may submit ``agent``'s work to.

    Raises:
        UsageError: the AgentFlow is not started, or this thread is its loop's own
            thread (blocking it would deadlock: use the async variant there).
    """
    loop = agent.flow.loop
    if loop is None or loop.is_closed():
        raise UsageError("the agent's AgentFlow is not running: start it for sync code with "
                         "`with AgentFlow(url).in_thread() as af:`, or use the async variant "
                         "inside `async with af:`")
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        raise UsageError("a sync tool call on the AgentFlow's own event loop would block it: "
                         "in async code use the async variant (await it)")
    return loop


def run_sync(agent: Agent, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the loop of ``agent``'s AgentFlow and wait for its result.

    Raises:
        UsageError: see `sync_loop`.
    """
    try:
        loop = sync_loop(agent)
    except UsageError:
        coro.close()
        raise
    return asyncio.run_coroutine_threadsafe(coro, loop).result()
