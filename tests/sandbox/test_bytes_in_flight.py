"""Bytes in flight per run between a worker and the host: past
`Limits.max_bytes_in_flight`, a step's result (or a call) is refused with an error named
LimitExceededError, instead of piling up in the host's memory."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sandbox import Limits, PlanRuntimeError, RemoteError, WorkerPool
from tests.sandbox.support import RecordingHost, make_event, plan, wait_until

MIB = 1024 * 1024


class HoldingHost(RecordingHost):
    """Runs each body at once but holds its result (as an engine would while it
    commits) until ``release`` is set; records how each body ended."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.outcomes: list[str] = []
        self.done = 0

    async def step(self, op: str, args: dict[str, Any],
                   run_body: Callable[[], Awaitable[Any]] | None) -> Any:
        assert op == "do" and run_body is not None
        try:
            value = await run_body()
        except RemoteError as exc:
            self.outcomes.append(exc.error_name)
            self.done += 1
            raise
        self.outcomes.append("ok")
        self.done += 1
        await self.release.wait()
        return len(value)


PLAN = plan('''
s = "x" * (512 * 1024)
results = await gather(*[step.do(f"blob {i}", lambda: s) for i in range(20)])
return results
''')


@pytest.mark.parametrize("isolation", ["inline", "process"])
async def test_results_past_the_bytes_in_flight_quota_are_refused(isolation: Any) -> None:
    limits = Limits(max_message_bytes=1 * MIB, max_bytes_in_flight=2 * MIB,
                    memory_bytes=256 * MIB)
    async with WorkerPool(isolation=isolation, limits=limits) as pool:
        host = HoldingHost()
        task = asyncio.ensure_future(pool.run_plan("inflight", PLAN, make_event(), host,
                                                   capabilities=[]))
        await wait_until(lambda: host.done == 20, timeout=60, what="every body to end")
        host.release.set()
        with pytest.raises(PlanRuntimeError) as caught:
            await asyncio.wait_for(task, 60)
    # 512 KiB results, 2 MiB in flight: three held at once (each with its step
    # message), every other one refused while they were held.
    assert host.outcomes.count("ok") == 3
    assert host.outcomes.count("LimitExceededError") == 17
    assert caught.value.error_name == "LimitExceededError"
    assert "max_bytes_in_flight" in caught.value.message


def test_the_quota_cannot_be_below_one_message() -> None:
    with pytest.raises(ValueError, match="max_bytes_in_flight"):
        Limits(max_message_bytes=4 * MIB, max_bytes_in_flight=1 * MIB)
