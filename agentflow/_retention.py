"""Retention: delete finished instances, by hand or by policy, without stalling the engine.

An instance is deleted with everything that belongs to it: its journal (steps, and the
output captured in them) and its events. Only *finished* instances (``complete``,
``errored``, ``terminated``) are ever deleted: an instance that may still run must be
terminated first, so nothing a worker holds disappears under it.

Policies keep finished instances for a while: a default for everyone
(``set_policy(keep)``) and one per agent (``set_policy(keep, agent="a1")``), stored in
the database so every process applies the same. `Retention.prune` applies them in
bounded batches: each batch is one short transaction (``batch`` instances), followed by
a bounded incremental vacuum on SQLite and a yield to the event loop, so the engine's
own commits interleave with pruning instead of waiting behind one long delete. Every
process that runs a scheduler prunes by itself every `AUTO_PRUNE_SECONDS` while a
policy is set; ``agentflow prune`` does it on demand.

Space: PostgreSQL reuses the space of deleted rows by itself (autovacuum). SQLite files
made by this version have ``auto_vacuum = INCREMENTAL``, so pruning hands pages back to
the file system as it goes; a file made before needs one ``agentflow prune --vacuum``
(a full ``VACUUM``: it rewrites the file and needs as much free disk) to switch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentflow._durations import parse_duration
from agentflow.errors import InvalidArgumentError, InvalidStateError
from agentflow.models import TERMINAL_STATUSES

if TYPE_CHECKING:
    from agentflow._engine import Engine

__all__ = ["AUTO_PRUNE_SECONDS", "DEFAULT_PACE", "PruneReport", "Retention"]

#: How often a process that runs a scheduler applies the retention policies.
AUTO_PRUNE_SECONDS = 300.0
_VACUUM_PAGES = 64  # pages handed back after each batch (256 KiB at 4 KiB pages)
#: Between batches, pruning rests this many times as long as the batch took (3: at
#: most a quarter of the writer's time goes to it), so runs' commits rarely queue
#: behind a delete, never behind a long streak of them.
DEFAULT_PACE = 3.0


@dataclass(frozen=True)
class PruneReport:
    """What a prune or delete did: how many instances went, and the SQLite pages
    handed back to the file system (0 elsewhere)."""

    deleted: int
    pages_freed: int = 0


def _statuses(status: str | Sequence[str] | None) -> list[str]:
    wanted = sorted(TERMINAL_STATUSES) if status is None else (
        [status] if isinstance(status, str) else list(status))
    active = [s for s in wanted if s not in TERMINAL_STATUSES]
    if active:
        raise InvalidArgumentError(
            f"only finished instances can be deleted ({', '.join(sorted(TERMINAL_STATUSES))})"
            f", not {active}; terminate an instance first to delete it")
    return wanted


class Retention:
    """``engine.retention``: delete finished instances and keep retention policies."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._last_auto = 0.0

    async def delete(self, instance_id: str) -> None:
        """Delete one finished instance with its journal and events.

        Raises:
            InstanceNotFoundError: no instance has that id.
            InvalidStateError: it has not finished (terminate it first).
        """
        inst = await self._engine.get_instance(instance_id)
        deleted = await self._engine.store.delete_instances(
            [instance_id], statuses=sorted(TERMINAL_STATUSES))
        if not deleted:
            status = (await inst.status()).status
            raise InvalidStateError(f"instance {instance_id!r} is {status}: only a finished "
                                    "instance can be deleted; terminate it first")

    async def delete_many(self, *, status: str | Sequence[str] | None = None,
                          older_than: Any = None, agent: str | None = None,
                          workflows_only: bool = False, batch: int = 25,
                          limit: int | None = None, pace: float = DEFAULT_PACE
                          ) -> PruneReport:
        """Delete finished instances that match, in batches of ``batch``.

        Args:
            status: finished statuses to delete (default: all three).
            older_than: only those finished longer ago than this duration.
            agent: only this agent's instances.
            workflows_only: only trusted workflows' instances (no agent's).
            batch: instances per transaction.
            limit: delete at most this many.
            pace: rest this many times a batch's duration after it (0: no rest).
        """
        before = None if older_than is None else (
            self._engine.clock.now() - parse_duration(older_than, what="older_than"))
        return await self._delete_where(
            statuses=_statuses(status), before=before,
            scopes=[agent] if agent else None, unscoped=workflows_only, batch=batch,
            limit=limit, pace=pace)

    async def _delete_where(self, *, statuses: list[str], before: float | None,
                            scopes: list[str] | None, unscoped: bool = False,
                            exclude: Sequence[str] = (), batch: int,
                            limit: int | None, pace: float = DEFAULT_PACE) -> PruneReport:
        if batch < 1:
            raise InvalidArgumentError(f"batch must be 1 or more, not {batch}")
        store = self._engine.store
        deleted = pages = 0
        while limit is None or deleted < limit:
            size = batch if limit is None else min(batch, limit - deleted)
            ids = await store.finished_instance_ids(
                statuses=statuses, finished_before=before, scopes=scopes, unscoped=unscoped,
                exclude_scopes=exclude, limit=size)
            if not ids:
                break
            began = time.monotonic()
            # Re-checked in the delete's own transaction: a restarted instance stays.
            deleted += len(await store.delete_instances(ids, statuses=statuses))
            pages += await store.reclaim_space(max_pages=_VACUUM_PAGES)
            # The engine's commits go between batches (see `DEFAULT_PACE`).
            await asyncio.sleep((time.monotonic() - began) * pace)
            if len(ids) < size:
                break
        if deleted:
            pages += await store.reclaim_space()  # the rest, and a checkpoint
        return PruneReport(deleted=deleted, pages_freed=pages)

    # -- policies --------------------------------------------------------------------
    async def set_policy(self, keep: Any, *, agent: str | None = None) -> None:
        """Keep finished instances for ``keep`` (a duration; None removes the policy).
        Without ``agent`` it is the default for every agent and trusted workflow that
        has no policy of its own."""
        seconds = None if keep is None else parse_duration(keep, what="keep")
        await self._engine.store.set_retention(agent or "", seconds, self._engine.clock.now())

    async def policies(self) -> dict[str | None, float]:
        """Seconds kept, by agent (None: the default)."""
        return {(scope or None): keep
                for scope, keep in (await self._engine.store.get_retention()).items()}

    async def prune(self, *, batch: int = 25, limit: int | None = None,
                    pace: float = DEFAULT_PACE) -> PruneReport:
        """Apply the retention policies once: delete finished instances older than their
        agent's policy (or the default), in batches of ``batch``, resting ``pace`` times
        each batch's duration after it."""
        policies = await self._engine.store.get_retention()
        now = self._engine.clock.now()
        statuses = sorted(TERMINAL_STATUSES)
        total = PruneReport(0, 0)
        for scope, keep in sorted(policies.items()):
            if scope == "":
                continue
            part = await self._delete_where(statuses=statuses, before=now - keep,
                                            scopes=[scope], batch=batch, limit=limit,
                                            pace=pace)
            total = PruneReport(total.deleted + part.deleted,
                                total.pages_freed + part.pages_freed)
        if "" in policies:
            part = await self._delete_where(
                statuses=statuses, before=now - policies[""], scopes=None,
                exclude=[s for s in policies if s], batch=batch, limit=limit, pace=pace)
            total = PruneReport(total.deleted + part.deleted,
                                total.pages_freed + part.pages_freed)
        return total

    async def prune_if_due(self, monotonic_now: float) -> None:
        """`prune`, at most every `AUTO_PRUNE_SECONDS` (the scheduler's loop calls it)."""
        if monotonic_now - self._last_auto < AUTO_PRUNE_SECONDS:
            return
        self._last_auto = monotonic_now
        await self.prune()
