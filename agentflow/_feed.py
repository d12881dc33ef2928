"""The change feed: what changed in the store, in commit order, from any process.

Every write to an instance that a reader would see (created, a new status, a wait, an
output or error, new params) and every journal entry written or changed adds one
numbered row to the store's ``changes`` table. The store's triggers write those rows,
so a worker, an MCP server and a notebook on one database all feed it without knowing
of each other. A subscriber keeps the number of the last change it saw (its cursor)
and reads the ones after it: it misses none and sees none twice, and after a
disconnect it carries on from the cursor it kept.

Reading is a poll of one indexed range (``seq > cursor``): it works the same on SQLite
across processes and on PostgreSQL. The feed says *that* an instance changed and its
new status; read the instance for the rest.

What was tried: PostgreSQL's LISTEN/NOTIFY alone loses what was sent while a listener
was disconnected, so it cannot carry a resumable cursor; a sequence number taken by the
trigger is not commit-ordered on PostgreSQL (see the store's migration 6 for how
numbers are made gapless there).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from agentflow._durations import to_datetime
from agentflow.errors import InvalidArgumentError
from agentflow.store import ChangeRow, Store

__all__ = ["Change", "subscribe"]

#: How many rows one poll reads at most; a subscriber far behind catches up in pages.
PAGE = 500


class Change(BaseModel):
    """One change to an instance, as the feed delivers it.

    Attributes:
        seq: its number; pass it as ``after=`` to resume just after this change.
        instance_id: the instance that changed.
        kind: ``created``, ``status`` (status, wait, output, error or params),
            ``step`` (a journal entry of ``step`` was written or changed) or
            ``deleted``.
        status: the instance's new status (for ``step``: the step's status).
        step: the step's name, for ``step`` changes.
        workflow: the instance's workflow (``agentflow.plan`` for agent plans).
        agent: the agent (scope) it belongs to, if any.
        at: when the change was written (wall time, UTC).
    """

    model_config = ConfigDict(frozen=True)

    seq: int
    instance_id: str
    kind: Literal["created", "status", "step", "deleted"]
    status: str | None = None
    step: str | None = None
    workflow: str
    agent: str | None = None
    at: datetime

    @property
    def cursor(self) -> int:
        """Where a subscription that saw this change resumes: pass it as ``after=``."""
        return self.seq


def change_from_row(row: ChangeRow) -> Change:
    return Change(seq=row.seq, instance_id=row.instance_id, kind=row.kind,  # type: ignore[arg-type]
                  status=row.status, step=row.step, workflow=row.workflow, agent=row.scope,
                  at=to_datetime(row.at))


def _matches(row: ChangeRow, instance_ids: Collection[str] | None,
             agents: Collection[str] | None, workflows: Collection[str] | None) -> bool:
    return ((instance_ids is None or row.instance_id in instance_ids)
            and (agents is None or row.scope in agents)
            and (workflows is None or row.workflow in workflows))


async def subscribe(store: Store, *, after: int | None = None,
                    instance_ids: Collection[str] | None = None,
                    agents: Collection[str] | None = None,
                    workflows: Collection[str] | None = None,
                    poll: float = 0.1) -> AsyncIterator[Change]:
    """Yield changes after the cursor ``after``, in order, forever (break to stop).

    Args:
        store: an open store.
        after: the ``seq`` of the last change already seen; ``0`` starts from the
            oldest change kept, None (the default) from now.
        instance_ids: only changes to these instances.
        agents: only changes to instances of these agents.
        workflows: only changes to instances of these workflows.
        poll: seconds between reads of the store when there is nothing new.

    Raises:
        InvalidArgumentError: a negative cursor or poll interval.
    """
    if after is not None and (isinstance(after, bool) or not isinstance(after, int)
                              or after < 0):
        raise InvalidArgumentError(f"after={after!r} is not a cursor: pass the seq of the "
                                   "last change you saw, 0 for the oldest, or None for now")
    if poll <= 0:
        raise InvalidArgumentError(f"poll={poll!r} must be a positive number of seconds")
    ids = frozenset(instance_ids) if instance_ids is not None else None
    scopes = frozenset(agents) if agents is not None else None
    names = frozenset(workflows) if workflows is not None else None
    cursor = await store.last_change() if after is None else after
    while True:
        rows = await store.read_changes(cursor, PAGE)
        for row in rows:
            cursor = row.seq
            if _matches(row, ids, scopes, names):
                yield change_from_row(row)
        if len(rows) < PAGE:
            await asyncio.sleep(poll)
