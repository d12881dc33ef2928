"""The dynamic dispatch primitives, exercised the way Cloudflare's own tests exercise
theirs: the envelope on create and create_batch, unwrapping on every run and resume,
and the error for a payload without an envelope."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentflow import (
    Engine,
    Event,
    InstanceNotFoundError,
    InvalidArgumentError,
    MissingDispatcherMetadataError,
    Step,
    create_dynamic_entrypoint,
    dispatch_workflow,
    wrap_workflow_binding,
)
from agentflow.dispatch import ENVELOPE_KEY
from agentflow.testing import ManualClock


class Loader:
    """A loader that records every call and serves one runner per tenant."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, metadata: dict[str, Any]) -> Any:
        self.calls.append(metadata)

        async def run(event: Event, step: Step) -> Any:
            seen = {"payload": event.payload, "id": event.instance_id}
            await step.sleep("nap", 60)
            return {"tenant": metadata["agent_id"], **seen}
        return run


async def test_envelope_is_persisted_and_unwrapped_on_every_run(engine: Engine,
                                                                clock: ManualClock) -> None:
    loader = Loader()
    engine.register("dynamic", create_dynamic_entrypoint(loader))
    tenant = wrap_workflow_binding(engine.binding("dynamic"), {"agent_id": "a1", "v": 3})
    inst = await tenant.create(params={"x": 1}, id="d1")
    row = await engine.store.get_instance("d1")
    assert row is not None
    assert json.loads(row.payload) == {ENVELOPE_KEY: {"agent_id": "a1", "v": 3},
                                       "params": {"x": 1}}
    assert (await inst.wait(timeout=5)).status == "waiting"
    clock.advance(60)  # the resume unwraps again and asks the loader again
    status = await inst.wait(timeout=5)
    assert status.output == {"tenant": "a1", "payload": {"x": 1}, "id": "d1"}
    assert loader.calls == [{"agent_id": "a1", "v": 3}] * 2


async def test_create_batch_wraps_each_item(engine: Engine, clock: ManualClock) -> None:
    loader = Loader()
    engine.register("dynamic", create_dynamic_entrypoint(loader))
    tenant = wrap_workflow_binding(engine.binding("dynamic"), {"agent_id": "a2"})
    insts = await tenant.create_batch([{"params": i, "id": f"b{i}"} for i in range(3)])
    again = await tenant.create_batch([{"params": 99, "id": "b0"}])  # idempotent
    assert [i.id for i in again] == ["b0"]
    for i, inst in enumerate(insts):
        row = await engine.store.get_instance(inst.id)
        assert row is not None
        assert json.loads(row.payload)["params"] == i
    clock.advance(60)
    for i, inst in enumerate(insts):
        await inst.wait(timeout=5)
        clock.advance(60)
        assert (await inst.wait(timeout=5)).output["payload"] == i


async def test_payload_without_envelope_errors_the_instance(engine: Engine) -> None:
    engine.register("dynamic", create_dynamic_entrypoint(Loader()))
    inst = await engine.binding("dynamic").create(params={"plain": True})
    status = await inst.wait(timeout=5)
    assert status.status == "errored"
    assert status.error is not None
    assert status.error["name"] == "MissingDispatcherMetadataError"
    assert ENVELOPE_KEY in status.error["message"]


async def test_dispatch_workflow_directly_and_runner_objects(engine: Engine) -> None:
    class Runner:
        async def run(self, event: Event, step: Step) -> Any:
            return await step.do("echo", lambda: event.payload)

    def sync_loader(metadata: dict[str, Any]) -> Runner:
        return Runner()

    @engine.workflow("custom")
    async def custom(event: Event, step: Step) -> Any:
        return await dispatch_workflow(event, step, sync_loader)

    tenant = wrap_workflow_binding(engine.binding("custom"), {"tenant": "t"})
    inst = await tenant.create(params=[1, 2])
    assert (await inst.wait(timeout=5)).output == [1, 2]
    with pytest.raises(MissingDispatcherMetadataError):
        await dispatch_workflow(Event(payload=1, timestamp=None, instance_id="x"),  # type: ignore[arg-type]
                                None, sync_loader)  # type: ignore[arg-type]


async def test_get_is_scoped_to_the_tenant(engine: Engine) -> None:
    engine.register("dynamic", create_dynamic_entrypoint(Loader()))
    a = wrap_workflow_binding(engine.binding("dynamic"), {"agent_id": "A"})
    b = wrap_workflow_binding(engine.binding("dynamic"), {"agent_id": "B"})
    inst = await a.create(id="mine")
    assert (await a.get("mine")).id == inst.id
    with pytest.raises(InstanceNotFoundError) as theirs:
        await b.get("mine")
    with pytest.raises(InstanceNotFoundError) as missing:
        await b.get("nope")
    assert str(theirs.value).replace("mine", "X") == str(missing.value).replace("nope", "X")
    await inst.terminate()  # the controls keep their options on a wrapped instance
    assert (await inst.status()).status == "terminated"
    with pytest.raises(InvalidArgumentError, match="JSON"):
        wrap_workflow_binding(engine.binding("dynamic"), {"agent_id": object()})


async def test_create_batch_never_hands_a_tenant_another_tenants_instance(
        engine: Engine) -> None:
    engine.register("dynamic", create_dynamic_entrypoint(Loader()))
    mine = wrap_workflow_binding(engine.binding("dynamic"), {"agent_id": "t1"})
    theirs = wrap_workflow_binding(engine.binding("dynamic"), {"agent_id": "t2"})
    await mine.create(params={"secret": 1}, id="t1-inst")
    with pytest.raises(InvalidArgumentError, match="'t1-inst' already exists"):
        await theirs.create_batch([{"id": "t2-new"}, {"id": "t1-inst", "params": {}}])
    assert await engine.store.get_instance("t2-new") is None  # refused before any write
    row = await engine.store.get_instance("t1-inst")
    assert row is not None and json.loads(row.payload)["params"] == {"secret": 1}
    with pytest.raises(InstanceNotFoundError):
        await theirs.get("t1-inst")
    again = await mine.create_batch([{"id": "t1-inst"}])  # its own: skipped, as ever
    assert [i.id for i in again] == ["t1-inst"]
