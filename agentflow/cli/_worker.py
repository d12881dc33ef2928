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
import importlib
import os
import signal
import sys
from urllib.parse import urlsplit, urlunsplit

from agentflow._engine import Engine
from agentflow.errors import InvalidArgumentError


def load_app(spec: str) -> object:
    """Import ``module:attribute`` and return the `Engine` or `AgentFlow` it names."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InvalidArgumentError(f"--app {spec!r} must look like package.module:engine")
    if os.getcwd() not in sys.path:  # like uvicorn: apps in the working directory import
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidArgumentError(f"--app {spec!r}: cannot import {module_name!r}: {exc}"
                                   ) from None
    app = getattr(module, attr, None)
    from agentflow.agents import AgentFlow

    if not isinstance(app, Engine | AgentFlow):
        raise InvalidArgumentError(f"--app {spec!r}: {attr!r} is neither an agentflow Engine "
                                   "nor an AgentFlow")
    return app


def without_password(url: str) -> str:
    """The URL as it may be printed: a password in it (postgresql://u:pw@h/db) is masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


async def run(args: argparse.Namespace) -> int:
    from agentflow.agents import AgentFlow

    flow = AgentFlow(args.db, isolation=args.isolation, engine_options={
        "max_concurrency": args.concurrency, "lease_seconds": args.lease,
        "poll_interval": args.poll})
    for spec in args.app:
        app = load_app(spec)
        if isinstance(app, AgentFlow):  # its agents' capability grants apply here too
            flow._grants.update(app._grants)
            app = app.engine
        assert isinstance(app, Engine)
        for name in app.workflows:
            if name not in flow.engine.workflows:
                flow.engine.register(name, app._workflows[name])
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
