"""One life of a host process for the restart test: ``python host_phase.py DB LOG PHASE``.

Phase 1 submits and starts a plan that calls a capability in a step, then sleeps 3 days;
the process exits. Phase 2 is a new process whose ManualClock is 3 days later: the plan
wakes and waits for an approval; the process exits. Phase 3 approves, and the plan
completes. Each phase prints the instance's status as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from agentflow import AgentFlow
from agentflow.capabilities import KVCapability, ToolsCapability
from agentflow.testing import ManualClock

T0 = 1_800_000_000.0
PLAN = '''
async def run(event, step):
    title = event.payload["title"]
    ticket = await step.do("open ticket", lambda: env.tools.call("open_ticket", title))
    await step.do("remember", lambda: env.kv.set("last", ticket))
    await step.sleep("cool off", "3 days")
    decision = await step.wait_for_event("approval", type="approval", timeout="7 days")
    if not decision["payload"].get("approved"):
        return {"status": "rejected", "ticket": ticket}
    return {"status": "approved", "ticket": ticket}
'''


def open_ticket(log: Path, title: str) -> str:
    with log.open("a") as f:
        f.write(title + "\n")
    return f"T-{sum(1 for _ in log.open())}"


async def main(db: str, log: Path, phase: int) -> None:
    clock = ManualClock(start=T0 + (0 if phase == 1 else 3 * 86400))
    af = AgentFlow(f"sqlite:///{db}", clock=clock, isolation="process")
    async with af:
        agent = af.agent("ops", capabilities={
            "tools": ToolsCapability({"open_ticket": lambda title: open_ticket(log, title)}),
            "kv": KVCapability()})
        if phase == 1:
            await agent.submit_plan("ticket", PLAN)
            inst = await agent.start("ticket", params={"title": "disk full"}, id="t1")
        else:
            inst = await agent.get("t1")
        if phase == 3:
            await agent.send_event("t1", "approval", {"approved": True})
        status = await inst.wait(timeout=30)
        print(json.dumps({"status": status.status, "output": status.output,
                          "waiting_on": status.waiting_on.kind if status.waiting_on else None}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])))
