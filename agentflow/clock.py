"""Where the engine reads the time.

Workflow time (when a sleep ends, when an event wait times out, when a retry is due,
what `step.now()` returns) is read only through a `Clock`. `SystemClock` is the real
one; `ManualClock` lets a test jump three days ahead in microseconds.

Leases between processes are not workflow time, nor this process's wall clock: the
store judges their expiry on the database's clock alone (the server's, on PostgreSQL),
and each run times its own lease on `time.monotonic()`. So a test that advances a
`ManualClock` does not make a live engine lose its own claims, and workers whose wall
clocks disagree still agree on when a lease ran out.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from agentflow._durations import parse_duration, parse_instant

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """The source of workflow time, in epoch seconds."""

    def now(self) -> float:
        """The current time in epoch seconds (UTC)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once `now()` has reached ``deadline``."""
        ...


class SystemClock:
    """The real clock: `time.time()` and `asyncio.sleep`."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.time()
        if delay > 0:
            await asyncio.sleep(delay)


class ManualClock:
    """A clock that moves only when the test says so.

    Example:
        clock = ManualClock()
        engine = Engine("memory://", clock=clock)
        ...
        clock.advance("3 days")     # every sleep that ends within 3 days is now due
        status = await instance.wait()

    Args:
        start: the initial time, as a datetime or epoch seconds; default: the real now.
    """

    def __init__(self, start: datetime | float | None = None) -> None:
        self._now = time.time() if start is None else parse_instant(start, what="start")
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def advance(self, duration: Any) -> float:
        """Move the clock forward by a duration (seconds, timedelta or '3 days');
        returns the new time."""
        return self.set(self._now + parse_duration(duration, what="advance"))

    def set(self, when: datetime | float) -> float:
        """Move the clock to a point in time; it never moves backwards."""
        self._now = max(self._now, parse_instant(when, what="when"))
        still: list[tuple[float, asyncio.Future[None]]] = []
        for deadline, fut in self._sleepers:
            if fut.done():
                continue
            if deadline <= self._now:
                fut.get_loop().call_soon_threadsafe(_resolve, fut)
            else:
                still.append((deadline, fut))
        self._sleepers = still
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (deadline, fut)
        self._sleepers.append(entry)
        try:
            await fut
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
