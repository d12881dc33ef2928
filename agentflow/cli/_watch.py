"""``agentflow watch``: print changes to instances as they happen, from every process
on the database, one line each (or JSON lines with ``--json``).

Each line starts with the change's number. ``--after N`` resumes just after change N
(a script that keeps the last number it printed misses nothing across restarts);
``--after 0`` replays every change kept. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import sys

from agentflow._text import printable
from agentflow.cli._db import client
from agentflow.cli._exits import EXIT_OK


async def run(args: argparse.Namespace) -> int:
    count = 0
    # Like every read: a missing or empty file is refused, never given a schema.
    async with client(args) as engine:
        async for change in engine.subscribe(
                after=args.after, instance_ids=args.instance or None,
                agents=args.agent or None, workflows=args.workflow or None):
            if args.json:
                print(change.model_dump_json(), flush=True)
            else:
                what = change.status or ""
                if change.kind == "step":
                    what = f"step {change.step!r} {change.status}"
                print(printable(f"{change.seq} {change.at:%Y-%m-%d %H:%M:%S} "
                                f"{change.instance_id} {change.kind} {what}"
                                f"{f' (agent {change.agent})' if change.agent else ''}"),
                      flush=True)
            count += 1
            if args.count and count >= args.count:
                break
    sys.stdout.flush()
    return EXIT_OK
