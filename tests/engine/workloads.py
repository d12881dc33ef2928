"""Workflows run by real worker processes in the crash and chaos tests.

Every step body appends a line to the file named by ``$AGENTFLOW_TEST_LOG``:
``<pid> <instance> <step> <start|end> <nonce> <time>``, and returns its nonce, so a test
can tell which execution's result the journal kept and whether anything ran after it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid

from agentflow import Engine, Event, Step

engine = Engine("memory://")  # the worker runs these workflows on its own database


def record(instance_id: str, i: int, phase: str, nonce: str) -> None:
    line = f"{os.getpid()} {instance_id} {i} {phase} {nonce} {time.time():.6f}\n"
    fd = os.open(os.environ["AGENTFLOW_TEST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@engine.workflow("chain")
async def chain(event: Event, step: Step) -> int:
    total = 0
    for i in range(event.payload["steps"]):
        async def body(i: int = i) -> list[object]:
            nonce = uuid.uuid4().hex[:12]
            record(event.instance_id, i, "start", nonce)
            await asyncio.sleep(event.payload.get("work", 0.002))
            record(event.instance_id, i, "end", nonce)
            return [i, nonce]
        value, _ = await step.do(f"s{i}", body)
        total += value
    return total


@engine.workflow("pair")
async def pair(event: Event, step: Step) -> list[object]:
    """Two waits on one event type at once: each event must complete exactly one."""
    first, second = await asyncio.gather(
        step.wait_for_event("first", type="go", timeout="1 hour"),
        step.wait_for_event("second", type="go", timeout="1 hour"))
    return [first["payload"], second["payload"]]


@engine.workflow("freeze")
async def freeze(event: Event, step: Step) -> str:
    """The first process to get here freezes between two steps for longer than its
    lease: SIGSTOP (as a VM pause would), or plan code blocking the loop. The body of
    ``after`` appends a line to ``<log>.after`` each time it runs."""
    log = os.environ["AGENTFLOW_TEST_LOG"]
    await step.do("before", lambda: 1)
    try:
        os.close(os.open(log + ".froze", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        pass  # another process froze here already: go on
    else:
        if event.payload["how"] == "stop":
            os.kill(os.getpid(), signal.SIGSTOP)
        else:
            time.sleep(event.payload["seconds"])  # blocks the event loop on purpose
        os.close(os.open(log + ".resumed", os.O_CREAT | os.O_WRONLY))

    def after() -> int:
        fd = os.open(log + ".after", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)
        return os.getpid()
    await step.do("after", after)
    return "done"
