"""``agentflow worker``: a long-running process that drives due instances.

Several workers, MCP servers and notebooks may share one database; claims with leases
and fencing tokens keep each instance in one place at a time. It always runs agent
plans (the dynamic workflow ``agentflow.plan``); ``--app`` adds the trusted workflows
registered on an `Engine`, or an `AgentFlow` whose agents' capability grants then apply
in this worker too (grants are process configuration, never stored). SIGTERM or SIGINT
stops the worker within about a second: it stops claiming, lets runs reach their next
step boundary (a step still running after the grace period is cancelled and will run
again), and hands its claims back at once.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from urllib.parse import urlsplit, urlunsplit


def without_password(url: str) -> str:
    """The URL as it may be printed: a password in it (postgresql://u:pw@h/db) is masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


async def run(args: argparse.Namespace) -> int:
    from agentflow.plans import AgentFlow, adopt_apps, load_app  # the sandbox: on demand

    flow = AgentFlow(args.db, isolation=args.isolation, run_scheduler=True, engine_options={
        "max_concurrency": args.concurrency, "lease_seconds": args.lease,
        "poll_interval": args.poll})
    adopt_apps(flow, [load_app(spec) for spec in args.app])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with flow:
        print(f"agentflow worker {flow.engine.owner} on {without_password(args.db)}: "
              f"{', '.join(flow.engine.workflows)}", file=sys.stderr, flush=True)
        await stop.wait()
    print("agentflow worker stopped", file=sys.stderr, flush=True)
    return 0
