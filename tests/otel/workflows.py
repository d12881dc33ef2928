"""A workflow that retries a step, sleeps and waits: every kind of span and event."""

from __future__ import annotations

from typing import Any

ATTEMPTS: dict[str, int] = {}


async def traced(event: Any, step: Any) -> Any:
    def flaky() -> str:
        ATTEMPTS[event.instance_id] = ATTEMPTS.get(event.instance_id, 0) + 1
        if ATTEMPTS[event.instance_id] == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    await step.do("flaky", flaky, retries={"limit": 2, "delay": 0.05})
    await step.sleep("nap", 0.05)
    got = await step.wait_for_event("go", type="go", timeout="1 hour")
    return got["payload"]
