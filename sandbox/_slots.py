"""`WorkerSlots`: which agents may have a worker now, and who waits for one.

A run holds its agent's slot from before its worker is looked up (or started) until it
ends; a worker whose agent holds no slot is idle. At most ``max_workers`` agents hold a
slot or have a live worker. When all are taken, the oldest idle worker is stopped to
make room; when every worker is busy, the run waits in one line with every other
waiting run, first come first served. A run of an agent that already has a slot joins
it, but only when nobody waits: otherwise it queues too, so a busy agent cannot starve
the others. Tried first: evicting the least recently used worker whatever it ran, which
killed runs in flight (8-17% of 300 simultaneous agents errored).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["WorkerSlots"]


class _SlotRequest:
    """A run waiting for a worker slot."""

    __slots__ = ("agent_id", "future", "label", "since")

    def __init__(self, agent_id: str, label: str | None,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.agent_id = agent_id
        self.label = label
        self.since = loop.time()
        self.future: asyncio.Future[None] = loop.create_future()


class WorkerSlots:
    """Slot accounting for a `WorkerPool`.

    Args:
        max_workers: agents that may hold a slot or have a live worker at once.
        workers: the pool's live workers by agent, least recently used first (read,
            and reordered when a worker goes idle).
        stop: stops an agent's idle worker (to make room).
    """

    def __init__(self, max_workers: int, workers: collections.OrderedDict[str, Any],
                 stop: Callable[[str], None]) -> None:
        self.max_workers = max_workers
        self._workers: Mapping[str, Any] = workers
        self._order = workers
        self._stop = stop
        self._holders: dict[str, int] = {}
        self._queue: collections.deque[_SlotRequest] = collections.deque()

    # -- reading -------------------------------------------------------------------------

    def holds(self, agent_id: str) -> bool:
        """True while a run of the agent holds its slot."""
        return bool(self._holders.get(agent_id))

    @property
    def busy(self) -> int:
        return sum(1 for n in self._holders.values() if n)

    @property
    def waiting(self) -> list[tuple[str, str | None, float]]:
        return [(r.agent_id, r.label, r.since) for r in self._queue if not r.future.done()]

    def waiting_since(self, label: str) -> float | None:
        for request in self._queue:
            if request.label == label and not request.future.done():
                return request.since
        return None

    # -- holding -------------------------------------------------------------------------

    async def acquire(self, agent_id: str, label: str | None) -> None:
        """Hold a slot for one run of ``agent_id``, waiting in line if none is free."""
        if not self._queue and self._grantable(agent_id):
            self._grant(agent_id)
            return
        request = _SlotRequest(agent_id, label, asyncio.get_running_loop())
        self._queue.append(request)
        try:
            await request.future
        except BaseException:
            if request.future.done() and not request.future.cancelled() and (
                    request.future.exception() is None):
                self.release(agent_id)  # granted just as we were cancelled
            else:
                with contextlib.suppress(ValueError):
                    self._queue.remove(request)
                self.pump()
            raise

    def release(self, agent_id: str) -> None:
        """One run of the agent ended."""
        left = self._holders.get(agent_id, 0) - 1
        if left > 0:
            self._holders[agent_id] = left
        else:
            self._holders.pop(agent_id, None)
            if agent_id in self._order:
                self._order.move_to_end(agent_id)  # now the most recently used idle one
        self.pump()

    def pump(self) -> None:
        """Grant waiting runs their slots, strictly in arrival order."""
        while self._queue:
            request = self._queue[0]
            if request.future.done():
                self._queue.popleft()
                continue
            if not self._grantable(request.agent_id):
                return
            self._queue.popleft()
            self._grant(request.agent_id)
            request.future.set_result(None)

    def fail_waiters(self, error: BaseException) -> None:
        """End every waiting run with ``error`` (the pool closes)."""
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_exception(error)
                request.future.exception()  # retrieved: the waiter sees it anyway

    def _taken(self) -> int:
        return len({a for a, n in self._holders.items() if n} | set(self._workers))

    def _grantable(self, agent_id: str) -> bool:
        if self._holders.get(agent_id) or agent_id in self._workers:
            return True  # it has a slot already: join it
        if self._taken() < self.max_workers:
            return True
        return any(not self._holders.get(a) for a in self._workers)  # an idle worker

    def _grant(self, agent_id: str) -> None:
        if (not self._holders.get(agent_id) and agent_id not in self._workers
                and self._taken() >= self.max_workers):  # make room: the oldest idle one
            self._stop(next(a for a in self._workers if not self._holders.get(a)))
        self._holders[agent_id] = self._holders.get(agent_id, 0) + 1
