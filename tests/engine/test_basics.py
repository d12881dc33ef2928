"""A run from creation to completion, what it sees, and how its failures are recorded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agentflow import (
    Engine,
    EngineNotStartedError,
    Event,
    InstanceNotFoundError,
    InvalidArgumentError,
    Step,
    WorkflowNotFoundError,
)
from agentflow.testing import ManualClock


async def test_run_completes_with_output_and_sees_event(engine: Engine,
                                                        clock: ManualClock) -> None:
    seen: list[Event] = []

    @engine.workflow("echo")
    async def echo(event: Event, step: Step) -> dict[str, Any]:
        seen.append(event)
        doubled = await step.do("double", lambda: event.payload["n"] * 2)
        return {"doubled": doubled}

    inst = await engine.binding("echo").create(params={"n": 21}, id="echo-1")
    status = await inst.wait(timeout=5)
    assert status.status == "complete"
    assert status.output == {"doubled": 42}
    assert status.error is None and status.waiting_on is None
    assert seen[0].payload == {"n": 21}
    assert seen[0].instance_id == "echo-1"
    assert seen[0].timestamp == datetime.fromtimestamp(clock.now(), tz=UTC)


async def test_async_step_body_and_generated_id(engine: Engine) -> None:
    @engine.workflow()
    async def fetch(event: Event, step: Step) -> str:
        async def body() -> str:
            return "fetched"
        return str(await step.do("fetch", body))

    inst = await engine.binding("fetch").create()
    assert len(inst.id) >= 16
    assert (await inst.wait(timeout=5)).output == "fetched"


async def test_bare_decorator_registers_under_the_function_name(engine: Engine) -> None:
    @engine.workflow
    async def bare(event: Event, step: Step) -> str:
        return "ran"

    assert "bare" in engine.workflows
    assert (await (await engine.binding("bare").create()).wait(timeout=5)).output == "ran"


async def test_uncaught_error_leaves_instance_errored_with_name_and_message(
        engine: Engine) -> None:
    @engine.workflow("boom")
    async def boom(event: Event, step: Step) -> None:
        raise KeyError("missing thing")

    inst = await engine.binding("boom").create()
    status = await inst.wait(timeout=5)
    assert status.status == "errored"
    assert status.error == {"name": "KeyError", "message": "'missing thing'"}


async def test_output_that_is_not_json_errors_the_instance(engine: Engine) -> None:
    @engine.workflow("setty")
    async def setty(event: Event, step: Step) -> object:
        return {1, 2}

    status = await (await engine.binding("setty").create()).wait(timeout=5)
    assert status.status == "errored"
    assert status.error is not None and "JSON-serializable" in status.error["message"]


async def test_step_results_are_json_round_tripped(engine: Engine) -> None:
    @engine.workflow("shapes")
    async def shapes(event: Event, step: Step) -> list[Any]:
        t = await step.do("tuple", lambda: (1, 2))
        return [t, isinstance(t, list)]

    assert (await (await engine.binding("shapes").create()).wait(timeout=5)).output == [
        [1, 2], True]


async def test_many_instances_run_concurrently(engine: Engine) -> None:
    @engine.workflow("count")
    async def count(event: Event, step: Step) -> int:
        total = 0
        for i in range(5):
            total += await step.do(f"add {i}", lambda i=i: i)
        return total

    insts = await engine.binding("count").create_batch([{"params": i} for i in range(50)])
    for inst in insts:
        assert (await inst.wait(timeout=10)).output == 10


async def test_unknown_workflow_and_instance(engine: Engine) -> None:
    with pytest.raises(WorkflowNotFoundError, match="nope"):
        engine.binding("nope")

    @engine.workflow("known")
    async def known(event: Event, step: Step) -> None:
        return None

    with pytest.raises(InstanceNotFoundError):
        await engine.binding("known").get("missing")
    with pytest.raises(InstanceNotFoundError):
        await engine.get_instance("missing")


async def test_create_batch_hands_back_a_skipped_id_as_what_holds_it(engine: Engine) -> None:
    @engine.workflow("a")
    async def a(event: Event, step: Step) -> str:
        return "a"

    @engine.workflow("b")
    async def b(event: Event, step: Step) -> str:
        return "b"

    await engine.binding("a").create(id="taken")
    handles = await engine.binding("b").create_batch([{"id": "taken"}, {"id": "fresh"}])
    assert [(h.id, h.workflow) for h in handles] == [("taken", "a"), ("fresh", "b")]
    assert (await handles[0].wait(timeout=5)).output == "a"  # left as it was


async def test_get_is_scoped_to_the_workflow(engine: Engine) -> None:
    @engine.workflow("a")
    async def a(event: Event, step: Step) -> None:
        return None

    @engine.workflow("b")
    async def b(event: Event, step: Step) -> None:
        return None

    inst = await engine.binding("a").create(id="only-a")
    assert (await engine.binding("a").get("only-a")).id == inst.id
    with pytest.raises(InstanceNotFoundError):
        await engine.binding("b").get("only-a")


async def test_registration_errors() -> None:
    engine = Engine("memory://")

    def not_async(event: Event, step: Step) -> None:
        return None

    with pytest.raises(InvalidArgumentError, match="async def"):
        engine.register("sync", not_async)  # type: ignore[arg-type]

    async def first(event: Event, step: Step) -> None:
        return None

    async def second(event: Event, step: Step) -> None:
        return None

    engine.register("dup", first)
    with pytest.raises(InvalidArgumentError, match="registered already"):
        engine.register("dup", second)


async def test_api_before_start_says_how_to_start() -> None:
    engine = Engine("memory://")

    @engine.workflow("w")
    async def w(event: Event, step: Step) -> None:
        return None

    with pytest.raises(EngineNotStartedError, match="async with engine"):
        await engine.binding("w").create()


async def test_create_rejects_existing_id_and_batch_skips_it(engine: Engine) -> None:
    runs: list[Any] = []

    @engine.workflow("once")
    async def once(event: Event, step: Step) -> Any:
        runs.append(event.payload)
        return event.payload

    wf = engine.binding("once")
    await wf.create(params="first", id="fixed")
    with pytest.raises(InvalidArgumentError, match="already exists"):
        await wf.create(params="second", id="fixed")
    batch = await wf.create_batch([{"id": "fixed", "params": "third"},
                                   {"id": "fresh", "params": "fourth"}])
    assert [i.id for i in batch] == ["fixed", "fresh"]
    assert (await batch[0].wait(timeout=5)).output == "first"
    assert (await batch[1].wait(timeout=5)).output == "fourth"
    again = await wf.create_batch([{"id": "fixed", "params": "x"}, {"id": "fresh", "params": "y"}])
    assert [i.id for i in again] == ["fixed", "fresh"]
    assert sorted(runs) == ["first", "fourth"]


async def test_create_batch_checks_every_item_before_writing(engine: Engine) -> None:
    @engine.workflow("w")
    async def w(event: Event, step: Step) -> None:
        return None

    wf = engine.binding("w")
    with pytest.raises(InvalidArgumentError, match="instance id"):
        await wf.create_batch([{"id": "good-1"}, {"id": "bad id!"}])
    with pytest.raises(InstanceNotFoundError):
        await wf.get("good-1")
    with pytest.raises(InvalidArgumentError, match="'params'"):
        await wf.create_batch([{"param": 1}])


async def test_list_instances_filters(engine: Engine) -> None:
    @engine.workflow("sleepy")
    async def sleepy(event: Event, step: Step) -> None:
        await step.sleep("nap", "1 day")

    @engine.workflow("quick")
    async def quick(event: Event, step: Step) -> None:
        return None

    s = await engine.binding("sleepy").create(id="s1")
    q = await engine.binding("quick").create(id="q1")
    await s.wait(timeout=5)
    await q.wait(timeout=5)
    waiting = await engine.list_instances(status="waiting")
    assert [st.id for st in waiting] == ["s1"]
    assert waiting[0].waiting_on is not None and waiting[0].waiting_on.kind == "sleep"
    assert [st.id for st in await engine.list_instances(workflow="quick")] == ["q1"]
    assert len(await engine.list_instances(status=["waiting", "complete"])) == 2
    with pytest.raises(InvalidArgumentError, match=r"status filter 'wating'.*'waiting'"):
        await engine.list_instances(status="wating")  # a typo is an error, not "none"
