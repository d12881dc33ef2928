"""`WorkerPool.run_plan` semantics, identical in process and inline isolation.

Round trips of every step op, parallel step calls, errors both ways, suspension,
capability calls and the JSON boundary. Each test runs against both isolations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio

from sandbox import (
    Limits,
    MessageTooLargeError,
    PlanRuntimeError,
    PlanValidationError,
    RemoteError,
    WorkerPool,
)
from tests.sandbox.support import RecordingHost, Suspend, make_event, plan, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMITS = Limits(call_timeout=10.0, max_message_bytes=256 * 1024)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["inline", "process"])
async def pool(request: pytest.FixtureRequest) -> AsyncIterator[WorkerPool]:
    async with WorkerPool(isolation=request.param, limits=LIMITS) as started:
        yield started


async def run(pool: WorkerPool, source: str, host: RecordingHost | None = None, *,
              agent: str = "agent-rt", payload: Any = None,
              capabilities: list[str] | None = None) -> Any:
    return await pool.run_plan(agent, source, make_event(payload), host or RecordingHost(),
                               capabilities=capabilities or [])


async def test_a_step_round_trip_returns_the_body_result(pool: WorkerPool) -> None:
    host = RecordingHost()
    result = await run(pool, plan('x = await step.do("double", lambda: event.payload * 2)\n'
                                  'return {"x": x, "tuple": (1, 2)}'), host, payload=21)
    assert result == {"x": 42, "tuple": [1, 2]}  # JSON round trip: tuples become lists
    assert host.calls == [("do", {"name": "double", "retries": None, "timeout": None})]


async def test_the_event_has_payload_timestamp_and_instance_id(pool: WorkerPool) -> None:
    result = await run(pool, plan("t = event.timestamp\n"
                                  "return [event.payload, t.year, t.hour, t.isoformat(), "
                                  "event.instance_id]"), payload={"k": [1]})
    assert result == [{"k": [1]}, 2026, 5, "2026-03-04T05:06:07+00:00", "inst-1"]


async def test_datetimes_format_with_strftime_and_f_string_specs(pool: WorkerPool) -> None:
    # datetime's C formatting imports `time` through the frame's builtins, which in a
    # plan hold no __import__: without help these fail with KeyError('__import__').
    result = await run(pool, plan("t = event.timestamp\n"
                                  "day = f'{t:%Y-%m-%d}'\n"
                                  "width = f'{event.payload:>5}'\n"
                                  "return [t.strftime('%H:%M'), day, width, f'{t!s:.4}']"),
                       payload="ab")
    assert result == ["05:06", "2026-03-04", "   ab", "2026"]


async def test_every_step_op_reaches_the_host_with_its_args(pool: WorkerPool) -> None:
    host = RecordingHost()
    source = plan('''
await step.do("d", lambda: 1, retries={"limit": 2}, timeout="5 seconds")
await step.sleep("nap", "3 days")
now = await step.now()
await step.sleep_until("until-dt", now)
await step.sleep_until("until-ts", now.timestamp() + 60)
got = await step.wait_for_event("approval", type="approval", timeout="7 days")
return [now.isoformat(), await step.random(), await step.uuid(), got]
''')
    result = await run(pool, source, host)
    assert result == ["2026-05-06T07:08:09+00:00", 0.25,
                      "00000000-0000-4000-8000-000000000000", None]
    when = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert host.calls == [
        ("do", {"name": "d", "retries": {"limit": 2}, "timeout": "5 seconds"}),
        ("sleep", {"name": "nap", "duration": "3 days"}),
        ("now", {}),
        ("sleep_until", {"name": "until-dt", "when": when}),  # a datetime stays one
        ("sleep_until", {"name": "until-ts", "when": when.timestamp() + 60}),
        ("wait_for_event", {"name": "approval", "type": "approval", "timeout": "7 days"}),
        ("random", {}),
        ("uuid", {}),
    ]


async def test_parallel_step_calls_are_in_flight_at_once(pool: WorkerPool) -> None:
    started: list[str] = []
    all_started = asyncio.Event()

    class GatedHost(RecordingHost):
        async def step(self, op: str, args: dict[str, Any],
                       run_body: Callable[[], Awaitable[Any]] | None) -> Any:
            started.append(args["name"])
            if len(started) == 5:
                all_started.set()
            await asyncio.wait_for(all_started.wait(), 10)  # each waits for all five
            return await super().step(op, args, run_body)

    source = plan('return await gather(*[step.do(f"p{i}", lambda i=i: i * i) '
                  'for i in range(5)])')
    assert await run(pool, source, GatedHost()) == [0, 1, 4, 9, 16]
    assert sorted(started) == [f"p{i}" for i in range(5)]


async def test_host_errors_reach_the_plan_under_their_class_name(pool: WorkerPool) -> None:
    class MyClientError(Exception):
        pass

    class EngineStepError(Exception):  # like agentflow.StepError: carries error_name
        def __init__(self, message: str, error_name: str) -> None:
            super().__init__(message)
            self.error_name = error_name

    EngineStepError.__name__ = "StepError"
    host = RecordingHost(fail={"v": ValueError("bad value"), "k": KeyError("key"),
                               "c": MyClientError("teapot"),
                               "s": EngineStepError("boom", "HTTPError"),
                               "t": TimeoutError("slow")})
    source = plan('''
out = []
try:
    await step.do("v", lambda: 1)
except ValueError as err:
    out.append(["ValueError", str(err)])
try:
    await step.do("k", lambda: 1)
except KeyError as err:
    out.append(["KeyError", err.args[0]])
try:
    await step.do("c", lambda: 1)
except StepError as err:
    out.append([err.error_name, err.message])
try:
    await step.do("s", lambda: 1)
except StepError as err:
    out.append([err.error_name, err.message])
try:
    await step.do("t", lambda: 1)
except TimeoutError as err:
    out.append(["TimeoutError", str(err)])
return out
''')
    assert await run(pool, source, host) == [
        ["ValueError", "bad value"], ["KeyError", "key"], ["MyClientError", "teapot"],
        ["HTTPError", "boom"], ["TimeoutError", "slow"]]


async def test_engine_error_names_are_rebuilt_as_plan_classes(pool: WorkerPool) -> None:
    class WorkflowTimeoutError(Exception):
        pass

    class NonRetryableError(Exception):
        pass

    host = RecordingHost(fail={"w": WorkflowTimeoutError("too late"),
                               "n": NonRetryableError("stop")})
    source = plan('''
out = []
try:
    await step.wait_for_event("w", type="approval")
except WorkflowTimeoutError as err:
    out.append(["wfte", str(err), isinstance(err, TimeoutError)])
try:
    await step.do("n", lambda: 1)
except NonRetryableError as err:
    out.append(["nre", str(err)])
return out
''')
    assert await run(pool, source, host) == [["wfte", "too late", True], ["nre", "stop"]]


async def test_body_errors_reach_the_host_as_remote_errors(pool: WorkerPool) -> None:
    host = RecordingHost()
    source = plan('''
def fail():
    raise NonRetryableError("do not retry " + event.payload)
try:
    await step.do("doomed", fail)
except NonRetryableError as err:
    return ["caught in plan", str(err)]
''')
    assert await run(pool, source, host, payload="this") == [
        "caught in plan", "do not retry this"]
    (error,) = host.body_errors
    assert isinstance(error, RemoteError)
    assert (error.error_name, error.message) == ("NonRetryableError", "do not retry this")


async def test_the_host_may_run_a_body_several_times(pool: WorkerPool) -> None:
    source = plan('''
attempts = []
def flaky():
    attempts.append(1)
    if len(attempts) < 3:
        raise ConnectionError(f"attempt {len(attempts)}")
    return len(attempts)
return await step.do("flaky", flaky)
''')
    host = RecordingHost(retries=2)
    assert await run(pool, source, host) == 3
    assert [e.message for e in host.body_errors] == ["attempt 1", "attempt 2"]  # type: ignore[attr-defined]


async def test_an_uncaught_plan_error_is_a_plan_runtime_error(pool: WorkerPool) -> None:
    with pytest.raises(PlanRuntimeError) as caught:
        await run(pool, plan('return {"a": 1}["missing"]'))
    assert (caught.value.error_name, caught.value.message) == ("KeyError", "'missing'")
    with pytest.raises(PlanRuntimeError) as caught:
        await run(pool, "X = 1 // 0\n" + plan("return X"))
    assert caught.value.error_name == "ZeroDivisionError"


async def test_a_suspension_abandons_the_run_and_is_reraised_as_is(
        pool: WorkerPool) -> None:
    raised: list[BaseException] = []

    class SuspendingHost(RecordingHost):
        async def step(self, op: str, args: dict[str, Any],
                       run_body: Callable[[], Awaitable[Any]] | None) -> Any:
            try:
                return await super().step(op, args, run_body)
            except Suspend as signal:
                raised.append(signal)
                raise

    host = SuspendingHost(suspend={"approval"})
    source = plan('''
await step.do("before", lambda: 1)
try:
    await step.wait_for_event("approval", type="approval")
finally:
    await step.do("after", lambda: 2)
return "unreachable"
''')
    with pytest.raises(Suspend) as caught:
        await run(pool, source, host, agent="agent-suspend")
    assert caught.value is raised[0]
    assert [args["name"] for _op, args in host.calls] == ["before", "approval"]
    # The worker is still usable, and still the same one.
    pid = pool.worker_pid("agent-suspend")
    assert await run(pool, plan("return 'again'"), agent="agent-suspend") == "again"
    assert pool.worker_pid("agent-suspend") == pid


async def test_a_suspension_cancels_the_other_calls_in_flight(pool: WorkerPool) -> None:
    body_started = asyncio.Event()

    async def slow_capability(*_args: Any) -> Any:
        body_started.set()
        await asyncio.Event().wait()  # never set: stays pending until cancelled

    host = RecordingHost(suspend={"wait"}, capability=slow_capability)
    source = plan('await gather(step.do("slow", lambda: env.kv.get("k")), '
                  'step.sleep("wait", 5))')
    with pytest.raises(Suspend):
        await run(pool, source, host, agent="agent-gather", capabilities=["kv"])
    assert await run(pool, plan("return 1"), agent="agent-gather") == 1


async def test_capability_calls_go_to_the_host(pool: WorkerPool) -> None:
    host = RecordingHost()
    source = plan('''
async def both():
    a = await env.kv.get("a", default=0)
    b = await env.tools.call("search", {"q": "x"})
    return [a, b]
one = await step.do("one", lambda: env.kv.get("k"))
return [one, await step.do("both", both)]
''')
    result = await run(pool, source, host, capabilities=["kv", "tools"])
    assert host.capability_calls == [("kv", "get", ["k"], {}),
                                     ("kv", "get", ["a"], {"default": 0}),
                                     ("tools", "call", ["search", {"q": "x"}], {})]
    assert result[0] == {"capability": "kv", "method": "get", "args": ["k"], "kwargs": {}}


STASH_HELPERS = """
STASH = []

def stash(call):
    STASH.append(call)
    return "stashed"

async def await_it():
    try:
        return await STASH[0]
    except RuntimeError as err:
        return ["refused", str(err)]
"""


@pytest.mark.parametrize("where", ["another step's body", "plan code between steps"])
async def test_a_capability_call_kept_from_one_body_cannot_run_elsewhere(
        pool: WorkerPool, where: str) -> None:
    # The call is made inside body "a" (allowed) but only awaited later: it must not run
    # as a side effect no step records.
    host = RecordingHost()
    late = ('return await step.do("b", await_it)' if where.startswith("another")
            else "return await await_it()")
    source = plan(f'await step.do("a", lambda: stash(env.kv.set("k", 1)))\n{late}',
                  helpers=STASH_HELPERS)
    result = await run(pool, source, host, agent="agent-stash", capabilities=["kv"])
    assert result[0] == "refused" and "must be awaited in the step body" in result[1]
    assert host.capability_calls == []


async def test_capability_errors_reach_the_body(pool: WorkerPool) -> None:
    async def failing(*_args: Any) -> Any:
        raise PermissionError("host not in allowlist")

    source = plan('''
async def body():
    try:
        return await env.http.get_json("https://evil.example")
    except OSError as err:
        return ["refused", str(err)]
return await step.do("get", body)
''')
    result = await run(pool, source, RecordingHost(capability=failing), capabilities=["http"])
    assert result == ["refused", "host not in allowlist"]


@pytest.mark.parametrize(("body", "error_name", "text"), [
    ('return await step.do("x", lambda: env.llm.complete("hi"))', "AttributeError",
     "capability 'llm' was not granted to this agent (granted: kv)"),
    ('return await env.kv.get("k")', "RuntimeError", "can only be called inside a step"),
    ('async def body():\n    return await step.now()\nreturn await step.do("x", body)',
     "RuntimeError",
     "cannot be called inside a step body"),
])
async def test_capabilities_and_steps_are_scoped(pool: WorkerPool, body: str,
                                                 error_name: str, text: str) -> None:
    with pytest.raises((PlanRuntimeError, RemoteError)) as caught:
        await run(pool, plan(body), capabilities=["kv"])
    assert caught.value.error_name == error_name
    assert text in caught.value.message


async def test_values_cross_the_boundary_as_json_only(pool: WorkerPool) -> None:
    class OddHost(RecordingHost):
        async def step(self, op: str, args: dict[str, Any],
                       run_body: Callable[[], Awaitable[Any]] | None) -> Any:
            return object() if args.get("name") == "odd" else await super().step(
                op, args, run_body)

    source = plan('''
try:
    await step.do("odd", lambda: 1)
except TypeError as err:
    return "host value refused: " + str(err)
''')
    assert (await run(pool, source, OddHost())).startswith("host value refused")
    with pytest.raises(PlanRuntimeError) as caught:
        await run(pool, plan("return {1, 2}"))
    assert caught.value.error_name == "TypeError"
    host = RecordingHost()
    with pytest.raises(PlanRuntimeError) as body_error:
        await run(pool, plan('return await step.do("s", lambda: {1, 2})'), host)
    assert "the step result is not JSON" in body_error.value.message
    assert [type(e) for e in host.body_errors] == [RemoteError]


async def test_messages_are_size_capped_both_ways(pool: WorkerPool) -> None:
    cap = LIMITS.max_message_bytes
    with pytest.raises(PlanRuntimeError) as caught:
        await run(pool, plan(f'return "x" * {cap + 1}'))
    assert "max_message_bytes" in caught.value.message
    with pytest.raises(MessageTooLargeError):
        await run(pool, plan("return 1"), payload="y" * (cap + 1))

    class BigHost(RecordingHost):
        async def step(self, *args: Any) -> Any:
            return "z" * (cap + 1)

    source = plan('try:\n    await step.now()\nexcept TypeError as err:\n    return str(err)')
    assert "max_message_bytes" in await run(pool, source, BigHost())


async def test_a_result_near_the_cap_is_kept_over_its_logs(pool: WorkerPool) -> None:
    cap = LIMITS.max_message_bytes
    near = cap - 2_000  # fits alone; with 8,000 characters of logs it would not
    body = (f'def big():\n    print("z" * 7000)\n    return "x" * {near}\n\n\n'
            f'async def run(event, step):\n    v = await step.do("big", big)\n'
            f'    return len(v)\n')
    assert await run(pool, body) == near
    host = RecordingHost()
    with pytest.raises(PlanRuntimeError) as caught:
        await run(pool, plan(f'return await step.do("huge", lambda: "x" * {cap + 1})'), host)
    assert "the step result is too large to send" in caught.value.message
    assert [e.final for e in host.body_errors] == [True]  # type: ignore[attr-defined]


async def test_invalid_source_is_refused_before_any_worker(pool: WorkerPool) -> None:
    with pytest.raises(PlanValidationError):
        await run(pool, plan("import os"), agent="agent-never-started")
    assert pool.worker_pid("agent-never-started") is None


async def test_a_cancelled_caller_abandons_the_run(pool: WorkerPool) -> None:
    entered = asyncio.Event()

    class BlockingHost(RecordingHost):
        async def step(self, *args: Any) -> Any:
            entered.set()
            await asyncio.Event().wait()  # never set: stays pending until cancelled

    task = asyncio.ensure_future(run(pool, plan('await step.sleep("s", 1)'), BlockingHost(),
                                     agent="agent-cancel"))
    await asyncio.wait_for(entered.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await run(pool, plan("return 'still fine'"), agent="agent-cancel") == "still fine"


async def test_runs_of_one_agent_can_overlap(pool: WorkerPool) -> None:
    gate = asyncio.Event()

    class Gate(RecordingHost):
        async def step(self, op: str, args: dict[str, Any], run_body: Any) -> Any:
            if args.get("name") == "gate":
                await asyncio.wait_for(gate.wait(), 10)
            return await super().step(op, args, run_body)

    first = asyncio.ensure_future(run(pool, plan('await step.sleep("gate", 1)\nreturn 1'),
                                      Gate(), agent="agent-overlap"))
    await wait_until(lambda: pool.worker_pid("agent-overlap") is not None
                     or pool.isolation == "inline")
    assert await run(pool, plan("return 2"), agent="agent-overlap") == 2
    gate.set()
    assert await first == 1
