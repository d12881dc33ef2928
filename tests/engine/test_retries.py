"""step.do retries: durable timers, the three backoff schedules, non-retryable errors,
per-attempt timeouts, and the final error journaled and raised again on replay."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from agentflow import (
    Engine,
    Event,
    NonRetryableError,
    Step,
    StepError,
    WorkflowTimeoutError,
)
from agentflow.testing import ManualClock


class Flaky:
    """A step body that fails ``failures`` times, then returns ``value``."""

    def __init__(self, failures: int, value: Any = "ok", error: type[Exception] = RuntimeError):
        self.failures, self.value, self.error = failures, value, error
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return self.value


@pytest.mark.parametrize(("backoff", "expected"), [
    ("constant", [10, 10, 10]),
    ("linear", [10, 20, 30]),
    ("exponential", [10, 20, 40]),
])
async def test_backoff_schedules_are_durable_timers(engine: Engine, clock: ManualClock,
                                                    backoff: str, expected: list[int]) -> None:
    body = Flaky(failures=3)

    @engine.workflow("flaky")
    async def flaky(event: Event, step: Step) -> Any:
        return await step.do("call", body, retries={"limit": 3, "delay": "10 seconds",
                                                    "backoff": backoff})

    inst = await engine.binding("flaky").create()
    delays = []
    for attempt in range(2, 5):
        status = await inst.wait(timeout=5)
        assert status.status == "waiting"
        assert status.waiting_on is not None
        assert status.waiting_on.kind == "retry"
        assert status.waiting_on.step == "call"
        assert status.waiting_on.attempt == attempt
        delay = status.waiting_on.until.timestamp() - clock.now()
        delays.append(round(delay))
        assert body.calls == attempt - 1
        clock.advance(delay - 0.5)  # not yet due: nothing runs
        assert (await inst.wait(timeout=5)).status == "waiting"
        assert body.calls == attempt - 1
        clock.advance(0.5)
    status = await inst.wait(timeout=5)
    assert status.status == "complete" and status.output == "ok"
    assert delays == expected
    assert body.calls == 4
    history = await inst.history()
    assert history[0].attempts == 4 and history[0].status == "ok"


async def test_limit_counts_retries_and_final_error_is_raised(engine: Engine,
                                                              clock: ManualClock) -> None:
    body = Flaky(failures=100, error=ValueError)

    @engine.workflow("doomed")
    async def doomed(event: Event, step: Step) -> Any:
        return await step.do("call", body, retries={"limit": 2, "delay": 1,
                                                    "backoff": "constant"})

    inst = await engine.binding("doomed").create()
    for _ in range(2):
        assert (await inst.wait(timeout=5)).status == "waiting"
        clock.advance(1)
    status = await inst.wait(timeout=5)
    assert body.calls == 3  # limit 2 => 3 attempts
    assert status.status == "errored"
    assert status.error == {"name": "ValueError", "message": "failure 3"}


async def test_non_retryable_error_stops_at_once(engine: Engine) -> None:
    body = Flaky(failures=5, error=NonRetryableError)

    @engine.workflow("nr")
    async def nr(event: Event, step: Step) -> Any:
        return await step.do("call", body)

    status = await (await engine.binding("nr").create()).wait(timeout=5)
    assert body.calls == 1
    assert status.status == "errored"
    assert status.error == {"name": "NonRetryableError", "message": "failure 1"}


async def test_zero_delay_retries_run_in_place(engine: Engine) -> None:
    body = Flaky(failures=2)

    @engine.workflow("fast")
    async def fast(event: Event, step: Step) -> Any:
        return await step.do("call", body, retries={"limit": 2, "delay": 0})

    assert (await (await engine.binding("fast").create()).wait(timeout=5)).output == "ok"
    assert body.calls == 3


async def test_timeout_per_attempt_raises_workflow_timeout_error(engine: Engine) -> None:
    attempts = 0
    never = asyncio.Event()

    async def slow() -> str:
        nonlocal attempts
        attempts += 1
        await never.wait()
        return "unreachable"

    @engine.workflow("slow")
    async def slow_wf(event: Event, step: Step) -> str:
        try:
            await step.do("slow", slow, timeout=0.05, retries={"limit": 1, "delay": 0})
        except WorkflowTimeoutError as exc:
            return f"caught: {exc}"
        return "no timeout"

    status = await (await engine.binding("slow").create()).wait(timeout=5)
    assert attempts == 2  # the timeout counted as a failed attempt, then one retry
    assert status.output.startswith("caught: step 'slow' attempt 2 timed out")


async def test_a_timeout_error_the_body_raises_is_its_own_error(engine: Engine) -> None:
    async def upstream() -> str:
        raise TimeoutError("upstream answered 504")

    @engine.workflow("gateway")
    async def gateway(event: Event, step: Step) -> str:
        try:
            await step.do("call", upstream, retries={"limit": 0})
        except WorkflowTimeoutError as exc:
            return f"step timeout: {exc}"
        except TimeoutError as exc:
            return f"its own: {exc}"
        return "no error"

    status = await (await engine.binding("gateway").create()).wait(timeout=5)
    assert status.output == "its own: upstream answered 504"


async def test_a_body_that_raises_cancelled_error_itself_fails_its_step(
        engine: Engine) -> None:
    calls = 0

    async def confused() -> str:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError  # nobody cancelled the run: this is the body's error

    @engine.workflow("confused")
    async def confused_wf(event: Event, step: Step) -> str:
        try:
            await step.do("call", confused, retries={"limit": 1, "delay": 0})
        except StepError as exc:  # a step error that names it, never a signal to the run
            return f"caught {exc.error_name}"
        return "no error"

    status = await (await engine.binding("confused").create()).wait(timeout=5)
    assert status.output == "caught CancelledError" and calls == 2


async def test_final_error_is_journaled_and_replay_raises_it_again(engine: Engine,
                                                                   clock: ManualClock) -> None:
    body = Flaky(failures=100, error=ConnectionError)
    caught: list[str] = []

    @engine.workflow("catcher")
    async def catcher(event: Event, step: Step) -> str:
        try:
            await step.do("call", body, retries={"limit": 0})
        except ConnectionError as exc:
            caught.append(str(exc))
        await step.sleep("later", timedelta(hours=1))  # forces a replay from the top
        return "handled"

    inst = await engine.binding("catcher").create()
    assert (await inst.wait(timeout=5)).status == "waiting"
    clock.advance("1 hour")
    assert (await inst.wait(timeout=5)).output == "handled"
    assert body.calls == 1  # the replay raised the journaled error without calling again
    assert caught == ["failure 1", "failure 1"]
    history = await inst.history()
    assert history[0].status == "error"
    assert history[0].error == {"name": "ConnectionError", "message": "failure 1"}


async def test_unknown_error_class_comes_back_as_step_error(engine: Engine) -> None:
    class CustomError(Exception):
        pass

    def body() -> None:
        raise CustomError("custom")

    @engine.workflow("custom")
    async def custom(event: Event, step: Step) -> list[str | None]:
        try:
            await step.do("call", body, retries={"limit": 0})
        except StepError as exc:
            return [exc.error_name, exc.message, exc.step]
        return []

    status = await (await engine.binding("custom").create()).wait(timeout=5)
    assert status.output == ["CustomError", "custom", "call"]


async def test_uncaught_step_error_keeps_the_original_name(engine: Engine) -> None:
    class QuotaError(Exception):
        pass

    def body() -> None:
        raise QuotaError("over quota")

    @engine.workflow("quota")
    async def quota(event: Event, step: Step) -> None:
        await step.do("call", body, retries={"limit": 0})

    status = await (await engine.binding("quota").create()).wait(timeout=5)
    assert status.error == {"name": "QuotaError", "message": "over quota"}


async def test_bad_retry_policy_is_a_clear_error(engine: Engine) -> None:
    @engine.workflow("bad")
    async def bad(event: Event, step: Step) -> str:
        try:
            await step.do("call", lambda: 1, retries={"limit": -1})
        except ValueError as exc:
            return str(exc)
        return "accepted"

    status = await (await engine.binding("bad").create()).wait(timeout=5)
    assert "retries['limit'] must be an integer >= 0" in status.output
