"""A step's failed attempts stay in its history after a retry succeeds, and `step.log`
lines are kept per step and per attempt, once: a replay does not log them again."""

from __future__ import annotations

from typing import Any

from agentflow import Engine, Event, Step
from agentflow.testing import ManualClock


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0
        self.step: Step | None = None

    def __call__(self) -> str:
        self.calls += 1
        assert self.step is not None
        self.step.log(f"attempt {self.calls} connecting")
        if self.calls <= self.failures:
            raise ConnectionError("mail server busy")
        return "sent"


async def test_failed_attempts_are_kept_after_a_retry_succeeds(engine: Engine,
                                                                clock: ManualClock) -> None:
    body = Flaky(failures=2)

    @engine.workflow("mail")
    async def mail(event: Event, step: Step) -> Any:
        step.log("about to send")
        body.step = step
        sent = await step.do("send", body, retries={"limit": 3, "delay": 10,
                                                    "backoff": "constant"})
        step.log("all done")
        return sent

    inst = await engine.binding("mail").create()
    for _ in range(2):
        assert (await inst.wait(timeout=30)).status == "waiting"
        clock.advance(10)
    assert (await inst.wait(timeout=30)).status == "complete"

    send, tail = await inst.history()
    assert send.status == "ok" and send.attempts == 3
    # Logged before the call three times (once per run), journaled once.
    assert send.logs == ["about to send"]
    history = send.attempt_history
    assert [a.attempt for a in history] == [1, 2, 3]
    assert [a.error for a in history] == [
        {"name": "ConnectionError", "message": "mail server busy"},
        {"name": "ConnectionError", "message": "mail server busy"}, None]
    assert [a.logs for a in history] == [["attempt 1 connecting"], ["attempt 2 connecting"],
                                         ["attempt 3 connecting"]]
    assert history[0].ended_at < history[1].started_at  # the retry waited its delay
    assert (tail.kind, tail.logs) == ("log", ["all done"])


async def test_a_clean_step_has_no_detail(engine: Engine) -> None:
    @engine.workflow("clean")
    async def clean(event: Event, step: Step) -> Any:
        return await step.do("one", lambda: 1)

    inst = await engine.binding("clean").create()
    assert (await inst.wait(timeout=30)).status == "complete"
    (one,) = await inst.history()
    assert one.logs == [] and one.attempt_history == []


async def test_logs_and_attempts_survive_reopening_the_database(db_url: str,
                                                                 clock: ManualClock) -> None:
    url = db_url  # a SQLite file, and a PostgreSQL schema
    calls = 0

    def body(step: Step) -> str:
        nonlocal calls
        calls += 1
        step.log(f"try {calls}")
        if calls == 1:
            raise RuntimeError("first try fails")
        return "ok"

    async def flow(event: Event, step: Step) -> Any:
        step.log("starting")
        return await step.do("x", lambda: body(step), retries={"limit": 1, "delay": 5})

    async with Engine(url, clock=clock) as first:
        first.register("flow", flow)
        inst = await first.binding("flow").create()
        assert (await inst.wait(timeout=30)).status == "waiting"
    clock.advance(5)
    async with Engine(url, clock=clock) as second:
        second.register("flow", flow)
        inst = await second.binding("flow").get(inst.id)
        assert (await inst.wait(timeout=30)).status == "complete"
        (x,) = await inst.history()
    assert calls == 2
    assert [a.error["message"] if a.error else None for a in x.attempt_history] == [
        "first try fails", None]
    assert x.logs == ["starting"]  # logged by both runs, journaled once
    assert [a.logs for a in x.attempt_history] == [["try 1"], ["try 2"]]
