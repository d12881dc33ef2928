"""Red-team attacks beyond the escape corpus: plans that try to hang or crash the host.

A plan cannot forge messages, but it controls what its errors and values contain. If
the worker cannot report how a run or a step body ended, the host waits forever: the
worker still answers the watchdog's pings, so it is never killed. Each attack here is
run in both isolations under a deadline that only a hang reaches.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from sandbox import Limits, PlanRuntimeError, WorkerPool, validate
from sandbox._protocol import encode_frame, error_payload
from tests.sandbox.support import RecordingHost, make_event, plan

module_loop = pytest.mark.asyncio(loop_scope="module")

#: Far longer than any of these runs takes; reaching it means the host was left hanging.
HANG = 20.0


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["inline", "process"])
async def pool(request: pytest.FixtureRequest) -> AsyncIterator[WorkerPool]:
    limits = Limits(call_timeout=2.0, memory_bytes=256 * 1024 * 1024)
    async with WorkerPool(isolation=request.param, limits=limits) as started:
        yield started


async def run(pool: WorkerPool, source: str, host: RecordingHost | None = None) -> Any:
    assert validate(source).ok, validate(source).diagnostics
    return await asyncio.wait_for(
        pool.run_plan("redteam", source, make_event(), host or RecordingHost(),
                      capabilities=[]), HANG)


_DEEP = "def deep():\n    x = []\n    for i in range(100000):\n        x = [x]\n    return x\n"

# (name, the expression the plan raises, the error name the host must see)
UNREPORTABLE_ERRORS = [
    ("NaN in the args", "ValueError(float('nan'))", "ValueError"),
    ("infinity among several args", "ValueError('a', float('inf'))", "ValueError"),
    ("an int too long to print", "ValueError(10 ** 5000)", "ValueError"),
    ("an argument too deep to print", "KeyError(deep())", "KeyError"),
    ("a StepError with a NaN error_name", "StepError('x', error_name=float('nan'))",
     "StepError"),
    ("a StepError with a deep error_name", "StepError('x', error_name=deep())", "StepError"),
    ("a StepError with a name that is no class name",
     "StepError('x', error_name='not a name!')", "StepError"),
]


@module_loop
@pytest.mark.parametrize(("expression", "expected"),
                         [(e, n) for _, e, n in UNREPORTABLE_ERRORS],
                         ids=[name for name, _, _ in UNREPORTABLE_ERRORS])
async def test_a_plan_error_that_cannot_be_printed_still_ends_the_run(
        pool: WorkerPool, expression: str, expected: str) -> None:
    with pytest.raises(PlanRuntimeError) as caught:
        await run(pool, plan(f"raise {expression}", helpers=_DEEP))
    assert caught.value.error_name == expected


@module_loop
@pytest.mark.parametrize(("expression", "expected"),
                         [(e, n) for _, e, n in UNREPORTABLE_ERRORS],
                         ids=[name for name, _, _ in UNREPORTABLE_ERRORS])
async def test_a_step_body_error_that_cannot_be_printed_still_ends_the_step(
        pool: WorkerPool, expression: str, expected: str) -> None:
    host = RecordingHost()
    source = plan("try:\n    await step.do('x', lambda: fail())\nexcept Exception as err:\n"
                  "    return 'caught'",
                  helpers=_DEEP + f"def fail():\n    raise {expression}\n")
    assert await run(pool, source, host) == "caught"
    assert len(host.body_errors) == 1


@pytest.mark.parametrize("exc", [ValueError(float("nan")), ValueError(10 ** 5000),
                                 KeyError([[[]]] * 2), OverflowError(2 ** 70, -1.5)])
def test_error_payload_always_encodes(exc: BaseException) -> None:
    payload = error_payload(exc)
    assert isinstance(payload["message"], str)
    encode_frame({"t": "fail", "error": payload}, 1 << 20)
