"""Group commit: one writer task folds the commits waiting at a moment into one transaction.

Both durable backends use it. Runners call `GroupCommitter.submit`; the writer takes
every commit queued since its last transaction and hands the lot to the backend's
``apply`` function, which writes them in one durable transaction and returns one
`CommitResult` per commit, in order. A runner's `submit` returns only when its own
commit is durable, so no instance starts step n+1 before step n is on disk, while many
instances share the cost of each fsync.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from agentflow.store._base import CommitResult, RunCommit

__all__ = ["GroupCommitter"]

Apply = Callable[[list[RunCommit]], Awaitable[list[CommitResult]]]


class GroupCommitter:
    def __init__(self, apply: Apply, *, name: str = "agentflow-commit") -> None:
        self._apply = apply
        self._name = name
        self._queue: list[tuple[RunCommit, asyncio.Future[CommitResult]]] = []
        self._ready: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        """Start the writer task on the running loop (a stopped committer may start again)."""
        self._ready, self._closing = asyncio.Event(), False
        self._task = asyncio.create_task(self._drain(), name=self._name)

    async def stop(self) -> None:
        """Write what is queued, then end the writer task.

        Commits that arrive while it stops still land; none is dropped half-done.
        """
        if self._task is None or self._ready is None:
            return
        self._closing = True
        self._ready.set()
        try:
            await self._task
        finally:
            self._task = None

    async def submit(self, commit: RunCommit) -> CommitResult:
        """Queue ``commit`` and return once it is durable (or the write failed)."""
        if self._task is None or self._ready is None or self._task.done():
            raise RuntimeError("the store is closed: open it before committing")
        fut: asyncio.Future[CommitResult] = asyncio.get_running_loop().create_future()
        self._queue.append((commit, fut))
        self._ready.set()
        return await fut

    async def _drain(self) -> None:
        assert self._ready is not None
        while True:
            await self._ready.wait()
            self._ready.clear()
            batch, self._queue = self._queue, []
            if batch:
                await self._write(batch)
            if self._closing and not self._queue:
                return

    async def _write(self, batch: list[tuple[RunCommit, asyncio.Future[CommitResult]]]
                     ) -> None:
        try:
            results = await self._apply([c for c, _ in batch])
        except BaseException as exc:  # the store is gone or broken: every waiter learns why
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc if isinstance(exc, Exception)
                                      else RuntimeError("the store closed mid-commit"))
            if not isinstance(exc, Exception):
                raise
            return
        for result, (_, fut) in zip(results, batch, strict=True):
            if not fut.done():
                fut.set_result(result)
