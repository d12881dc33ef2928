"""The workflow `bench/bench_postgres.py` runs in real `agentflow worker` processes: S
trivial steps, each durable before the next (the shape of ../shared/baselines)."""

from agentflow import Engine

engine = Engine("memory://")  # the worker runs it on its own database


@engine.workflow("plan")
async def plan(event, step):
    x = 0
    for _ in range(event.payload["steps"]):
        x = await step.do("add", lambda x=x: x + 1)
    return x
