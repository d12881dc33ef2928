"""`StepRate`: the per-agent step rate (`Quotas.agent_steps_per_second`), a token bucket
that delays step bodies past the rate and never fails them."""

from __future__ import annotations

import asyncio
import time

__all__ = ["StepRate"]


class StepRate:
    """A token bucket: ``burst`` step bodies at once, then ``per_second`` on average.

    Waiters are served in arrival order (the lock), so a busy instance cannot starve
    another instance of the same agent. The clock is the host's monotonic one: a rate
    is about CPU and I/O now, not workflow time.
    """

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = float(per_second)
        self.burst = max(1, int(burst))
        self._tokens = float(self.burst)
        self._at = time.monotonic()
        self._lock = asyncio.Lock()
        self.delayed = 0  # step bodies that had to wait (shown in usage and tests)

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        self._at = now

    async def take(self) -> None:
        """Wait until a step body may start."""
        async with self._lock:
            self._refill()
            if self._tokens < 1:
                self.delayed += 1
                await asyncio.sleep((1 - self._tokens) / self.per_second)
                self._refill()
            self._tokens -= 1
