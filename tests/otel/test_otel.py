"""OpenTelemetry: one trace per instance, a span per step attempt across replays and
processes, events for sleeps and waits, and the trace an MCP client sends in
``_meta.traceparent``. Asserted with the SDK's InMemorySpanExporter."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentflow import Engine
from agentflow.otel import instrument
from tests.otel.workflows import traced

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def provider_for(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _named(spans: tuple[ReadableSpan, ...], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]


async def test_one_trace_per_instance_spans_per_attempt_and_events(
        exporter: InMemorySpanExporter, tmp_path: Path) -> None:
    engine = Engine(f"sqlite:///{tmp_path}/o.db")
    engine.register("traced", traced)
    instrument(engine, tracer_provider=provider_for(exporter))
    async with engine:
        inst = await engine.binding("traced").create(id="one")
        other = await engine.binding("traced").create(id="two")
        for i in (inst, other):
            status = await i.wait(timeout=60)
            while status.status != "waiting" or status.waiting_on is None or (
                    status.waiting_on.kind != "event"):
                await asyncio.sleep(0.01)
                status = await i.status()
        await inst.send_event("go", "done")
        assert (await inst.wait(timeout=60)).status == "complete"
    spans = exporter.get_finished_spans()
    mine = [s for s in spans if s.attributes and s.attributes.get(
        "agentflow.instance_id") == "one"]
    trace_id = mine[0].context.trace_id
    attempts = [s for s in _named(spans, "agentflow.step flaky")
                if s.context.trace_id == trace_id]
    # Two attempts of the flaky step, two spans: the first failed, with its error.
    assert len(attempts) == 2
    assert attempts[0].status.status_code.name == "ERROR"
    assert attempts[0].events[0].name == "exception"
    assert attempts[1].status.status_code.name == "UNSET"
    assert [s.attributes["agentflow.step.attempt"] for s in attempts  # type: ignore[index]
            ] == [1, 2]
    # Runs: the retry, the sleep and the wait each end one; a replay runs the journal
    # without executing a step again, so there are no more step spans than attempts.
    runs = [s for s in mine if s.name == "agentflow.run traced"]
    assert len(runs) >= 3 and {s.context.trace_id for s in runs} == {trace_id}
    events = [e.name for s in runs for e in s.events]
    assert "agentflow.retry" in events and "agentflow.sleep" in events
    assert "agentflow.wait" in events
    assert runs[-1].attributes["agentflow.run.outcome"] == "complete"  # type: ignore[index]
    # Every step span hangs from a run span of the same trace; the other instance has
    # a trace of its own.
    run_ids = {s.context.span_id for s in runs}
    assert all(s.parent is not None and s.parent.span_id in run_ids for s in attempts)
    theirs = {s.context.trace_id for s in spans if s.attributes and s.attributes.get(
        "agentflow.instance_id") == "two"}
    assert theirs and trace_id not in theirs


async def slow_retry(event: Any, step: Any) -> Any:
    def fails_first() -> str:
        if not event.payload.get("fixed"):
            raise RuntimeError("not yet")
        return "ok"

    return await step.do("fragile", fails_first, retries={"limit": 3, "delay": "1 hour"})


async def test_each_step_span_names_its_attempt_across_engines(
        exporter: InMemorySpanExporter, tmp_path: Path) -> None:
    """Attempt 1 runs and fails in one engine; attempt 2 runs an hour later in another
    engine on the same database: its span says attempt 2, as the history counts it."""
    from agentflow.clock import ManualClock

    url = f"sqlite:///{tmp_path}/o.db"
    provider = provider_for(exporter)
    first = Engine(url)
    first.register("slow_retry", slow_retry)
    instrument(first, tracer_provider=provider)
    async with first:
        inst = await first.binding("slow_retry").create(id="far", params={"fixed": False})
        status = await inst.wait(timeout=60)
        assert status.waiting_on is not None and status.waiting_on.attempt == 2, status
    clock = ManualClock()
    second = Engine(url, clock=clock)
    second.register("slow_retry", slow_retry)
    instrument(second, tracer_provider=provider)
    async with second:
        clock.advance("2 hours")
        inst = await second.get_instance("far")
        status = await inst.wait(timeout=60)
        assert status.waiting_on is not None and status.waiting_on.attempt == 3, status
    spans = _named(exporter.get_finished_spans(), "agentflow.step fragile")
    assert [s.attributes["agentflow.step.attempt"] for s in spans  # type: ignore[index]
            ] == [1, 2]
    assert len({s.context.trace_id for s in spans}) == 1


async def test_the_creators_trace_continues_in_another_process(
        exporter: InMemorySpanExporter, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/o.db"
    provider = provider_for(exporter)
    engine = Engine(url, run_scheduler=False)  # this process only creates
    engine.register("traced", traced)
    instrument(engine, tracer_provider=provider)
    tracer = provider.get_tracer("test")
    async with engine:
        with tracer.start_as_current_span("the caller") as caller:
            await engine.binding("traced").create(id="far")
        caller_trace = caller.get_span_context().trace_id
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.otel.runner", url, "far", cwd=ROOT,
            stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0
    spans = [json.loads(line) for line in out.decode().splitlines()]
    assert {s["name"] for s in spans} >= {"agentflow.run traced", "agentflow.step flaky"}
    assert {s["trace_id"] for s in spans} == {caller_trace}
    assert sum(s["name"] == "agentflow.step flaky" for s in spans) == 2


async def test_an_mcp_clients_traceparent_is_the_instances_trace(
        exporter: InMemorySpanExporter) -> None:
    from mcp import Client

    from agentflow import AgentFlow
    from mcp_server import ServerConfig, build_server

    plan = '''async def run(event, step):
    await step.do("work", lambda: 1)
    return "done"
'''
    trace_id = 0x4BF92F3577B34DA6A3CE929D0E0E4736
    traceparent = f"00-{trace_id:032x}-00f067aa0ba902b7-01"
    async with AgentFlow("memory://", isolation="inline") as af:
        instrument(af, tracer_provider=provider_for(exporter))
        await af.agent("alice").submit_plan("p", plan)
        async with Client(build_server(af, ServerConfig(agent_id="alice"))) as client:
            result = await client.call_tool("start_instance", {"plan": "p"},
                                            meta={"traceparent": traceparent})
            assert not result.is_error, result.content
            instance_id = (result.structured_content or {})["instance"]["id"]
        assert (await af.agent("alice").wait(instance_id, timeout=60)).status == "complete"
    spans = exporter.get_finished_spans()
    step = _named(spans, "agentflow.step work")
    assert len(step) == 1 and step[0].context.trace_id == trace_id
    assert {s.context.trace_id for s in _named(spans, "agentflow.run")} == {trace_id}


async def finishes(event: Any, step: Any) -> Any:
    return await step.do("once", lambda: "ok")


async def test_an_instances_trace_record_is_deleted_with_it(
        exporter: InMemorySpanExporter, tmp_path: Path) -> None:
    from agentflow.otel import TRACE_SCOPE

    provider = provider_for(exporter)
    engine = Engine(f"sqlite:///{tmp_path}/o.db")
    engine.register("finishes", finishes)
    instrument(engine, tracer_provider=provider)
    async with engine:
        with provider.get_tracer("test").start_as_current_span("the caller"):
            kept = await engine.binding("finishes").create(id="kept")
            gone = await engine.binding("finishes").create(id="gone")
        for inst in (kept, gone):
            assert (await inst.wait(timeout=60)).status == "complete"
        assert await engine.store.kv_get(TRACE_SCOPE, "gone") is not None
        await engine.retention.delete("gone")
        assert await engine.store.kv_get(TRACE_SCOPE, "gone") is None
        assert await engine.store.kv_get(TRACE_SCOPE, "kept") is not None
