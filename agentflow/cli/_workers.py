"""Whether anything will run what a command just sent.

A command only writes to the database; a worker (``agentflow worker``, an MCP server,
any process inside ``async with engine``) runs instances. Each process that runs a
scheduler records itself as alive in the store every third of its lease (see
`agentflow._schedules`) and removes itself when it closes. A command that sent an
event, an approval or a new instance checks that table: with no live worker it says that
the change is stored and that nothing runs it until a worker does. A worker killed
without closing still counts for up to one lease (30 s by default); that is the honest
limit of this check.
"""

from __future__ import annotations

import time

from agentflow.store import Store

__all__ = ["no_worker_note"]


async def no_worker_note(store: Store, instance_id: str | None = None) -> str | None:
    """A sentence saying that no worker runs, or None when one does."""
    if await store.live_workers(time.time()):
        return None
    what = f"instance {instance_id!r}" if instance_id else "it"
    return (f"no worker is running on this database (none has reported in the last lease "
            f"period): the change is stored, but nothing runs {what} until one starts "
            f"(`agentflow worker`)")
