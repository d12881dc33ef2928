"""``agentflow worker``: a long-running process that drives due instances.

Several workers, MCP servers and notebooks may share one database; claims with leases
and fencing tokens keep each instance in one place at a time. SIGTERM or SIGINT stops
the worker within about a second: it stops claiming, cancels its runs in flight (a
step that had not committed will run again), and hands its claims back at once.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import sys

from agentflow._engine import Engine
from agentflow.errors import InvalidArgumentError


def load_app(spec: str) -> Engine:
    """Import ``module:attribute`` and return the `Engine` it names."""
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
    if not isinstance(app, Engine):
        raise InvalidArgumentError(f"--app {spec!r}: {attr!r} is not an agentflow Engine")
    return app


async def run(args: argparse.Namespace) -> int:
    engine = Engine(args.db, max_concurrency=args.concurrency, lease_seconds=args.lease,
                    poll_interval=args.poll)
    for spec in args.app:
        app = load_app(spec)
        for name in app.workflows:
            engine.register(name, app._workflows[name])
    if not engine.workflows:
        raise InvalidArgumentError("the worker has no workflows to run: pass --app "
                                   "module:engine")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with engine:
        print(f"agentflow worker {engine.owner} on {args.db}: {', '.join(engine.workflows)}",
              file=sys.stderr, flush=True)
        await stop.wait()
    print("agentflow worker stopped", file=sys.stderr, flush=True)
    return 0
