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

from sandbox import Limits, PlanRuntimeError, SandboxTimeoutError, WorkerPool, validate
from sandbox._protocol import encode_frame, error_payload
from tests.sandbox.support import RecordingHost, make_event, plan, wait_until

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


# --- keeping the worker's event loop turning ---------------------------------------------

_NOOP = "async def noop():\n    return 1\n"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def process_pool() -> AsyncIterator[WorkerPool]:
    limits = Limits(call_timeout=0.5, memory_bytes=256 * 1024 * 1024)
    async with WorkerPool(limits=limits) as started:
        yield started


@module_loop
@pytest.mark.parametrize("body", [
    "while True:\n    await gather(noop())",
    "while True:\n    await gather(noop(), noop())\n    x = [i for i in range(1000)]",
])
async def test_a_plan_that_yields_forever_is_killed_by_the_watchdog(
        process_pool: WorkerPool, body: str) -> None:
    # Each gathered coroutine is a task, so every await lets the worker's loop answer
    # the watchdog's pings: the wall-clock check alone never fires (it ran until
    # RLIMIT_CPU). The worker's CPU time since its last real message ends it.
    with pytest.raises(SandboxTimeoutError, match=r"call_timeout=0\.5 s"):
        await asyncio.wait_for(process_pool.run_plan(
            "yielder", plan(body, helpers=_NOOP), make_event(), RecordingHost(),
            capabilities=[]), HANG)
    assert await process_pool.run_plan("yielder", plan("return 'rebuilt'"), make_event(),
                                       RecordingHost(), capabilities=[]) == "rebuilt"


@module_loop
async def test_waiting_for_a_slow_host_is_not_computing(process_pool: WorkerPool) -> None:
    # The CPU check must not end a worker that waits: the host answers only after the
    # watchdog has pinged it for longer than call_timeout.
    connection: list[Any] = []

    async def slow(name: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        (worker,) = connection
        seen = worker._ping_seq
        await wait_until(lambda: worker._ping_seq >= seen + 8, what="8 watchdog ticks")
        return "answered"

    host = RecordingHost(capability=slow)
    await process_pool.run_plan("patient", plan("return 1"), make_event(), host,
                                capabilities=["kv"])
    connection.append(process_pool._workers["patient"])
    source = plan("return await step.do('wait', lambda: env.kv.get('k'))")
    assert await process_pool.run_plan("patient", source, make_event(), host,
                                       capabilities=["kv"]) == "answered"


@module_loop
async def test_gather_leaves_no_coroutine_running_when_one_fails(
        process_pool: WorkerPool) -> None:
    # asyncio.gather raises the first error and leaves the other coroutines running:
    # here an endless one would compute on in the worker after its run ended. gather
    # waits for all of them, so the run cannot end and the watchdog stops it.
    helpers = _NOOP + ("async def spin():\n    while True:\n        await gather(noop())\n"
                       "async def boom():\n    raise ValueError('first')\n")
    with pytest.raises(SandboxTimeoutError):
        await asyncio.wait_for(process_pool.run_plan(
            "orphans", plan("await gather(spin(), boom())", helpers=helpers), make_event(),
            RecordingHost(), capabilities=[]), HANG)


@module_loop
async def test_gather_still_raises_the_first_error_and_checks_its_arguments(
        pool: WorkerPool) -> None:
    helpers = "async def boom(n):\n    raise ValueError(n)\n"
    source = plan("try:\n    await gather(step.now(), boom(1), boom(2))\n"
                  "except ValueError as err:\n    first = err.args[0]\n"
                  "try:\n    await gather(boom(3), 1)\nexcept TypeError as err:\n"
                  "    return [first, str(err)]", helpers=helpers)
    assert await run(pool, source) == [
        1, "gather() takes awaitables, such as step calls, not int"]


class _ImpatientHost(RecordingHost):
    """Gives up on every step body after a moment, as the engine's step timeout does."""

    async def step(self, op: str, args: dict[str, Any], run_body: Any) -> Any:
        if op != "do":
            return await super().step(op, args, run_body)
        try:
            return await asyncio.wait_for(run_body(), 0.05)
        except TimeoutError:
            return "gave up"


@module_loop
async def test_a_step_body_that_ignores_its_cancellation_ends_its_worker(
        process_pool: WorkerPool) -> None:
    # The host gives up on the body; the body's `finally` loops on. Its run ends
    # normally, and the worker, idle as far as the host knows, would compute until
    # RLIMIT_CPU. The worker ends itself after call_timeout instead.
    helpers = _NOOP + ("async def stubborn():\n    try:\n        while True:\n"
                       "            await gather(noop())\n    finally:\n"
                       "        while True:\n            await gather(noop())\n")
    source = plan("return await step.do('stubborn', lambda: stubborn())", helpers=helpers)
    host = _ImpatientHost()
    await process_pool.run_plan("stubborn", plan("return 1"), make_event(), host,
                                capabilities=[])
    connection = process_pool._workers["stubborn"]
    assert await process_pool.run_plan("stubborn", source, make_event(), host,
                                       capabilities=[]) == "gave up"
    await wait_until(lambda: connection.dead is not None, what="the worker's end")
    # Either the worker ends itself, or the host's watchdog (the same call_timeout)
    # kills it first, which a busy machine makes likely: both end the computation.
    assert ("ignored its cancellation" in str(connection._fatal_reason)
            or "without answering" in str(connection.dead)), (connection.dead,
                                                              connection._fatal_reason)
