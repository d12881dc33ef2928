"""The workflow `bench/bench_timers.py` runs in a real worker: sleep until a time, then
record when it actually woke."""

import time

from agentflow import Engine

engine = Engine("memory://")


@engine.workflow("sleeper")
async def sleeper(event, step):
    await step.sleep_until("wake", event.payload["at"])
    return await step.do("fired", lambda: time.time())
