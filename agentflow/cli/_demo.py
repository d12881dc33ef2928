"""``agentflow demo``: the README's workflow, run end to end on a real database."""

from __future__ import annotations

import argparse
import asyncio
import time

from agentflow import Engine
from agentflow.examples import greet as example


async def run(args: argparse.Namespace) -> int:
    engine = Engine(args.db)  # the example's workflow, on the database asked for
    engine.register("greet", example.greet)
    async with engine:
        inst = await engine.binding("greet").create(params={"name": args.name})
        print(f"created instance {inst.id} on {args.db}")
        status = await inst.wait(timeout=60)
        while status.status == "waiting" and status.waiting_on is not None:
            w = status.waiting_on
            if w.kind == "event":
                print(f"waiting for an event of type {w.type!r}; sending one as a human would")
                await inst.send_event("approval", {"approved": True})
            else:
                print(f"waiting: {w.kind} {w.step!r} until {w.until:%H:%M:%S.%f} UTC")
                await asyncio.sleep(max(0.0, w.until.timestamp() - time.time()))
            status = await inst.wait(timeout=60)
        print("timeline:")
        for h in await inst.history():
            took = (h.finished_at - h.started_at).total_seconds() if h.finished_at else 0.0
            print(f"  {h.seq:>2}. {h.kind:<6} {h.name!r:<14} {h.status:<6} "
                  f"attempts={h.attempts} {took:6.2f}s")
        print(f"status: {status.status}")
        print(f"output: {status.output}")
        return 0 if status.status == "complete" else 1
