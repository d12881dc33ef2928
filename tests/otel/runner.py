"""Another process for the OpenTelemetry test: it runs due instances of the ``traced``
workflow with instrumentation, and prints each finished span as one JSON line.

Usage: python -m tests.otel.runner URL INSTANCE_ID
"""

from __future__ import annotations

import asyncio
import json
import sys

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentflow import Engine
from agentflow.otel import instrument
from tests.otel.workflows import traced


async def main(url: str, instance_id: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    engine = Engine(url)
    engine.register("traced", traced)
    instrument(engine, tracer_provider=provider)
    async with engine:
        inst = await engine.get_instance(instance_id)
        deadline = asyncio.get_running_loop().time() + 60
        while True:  # past the retry timer and the sleep, to its event wait
            status = await inst.wait(timeout=60)
            if status.waiting_on is not None and status.waiting_on.kind == "event":
                break
            assert asyncio.get_running_loop().time() < deadline, status
            await asyncio.sleep(0.01)
    for span in exporter.get_finished_spans():
        print(json.dumps({"name": span.name, "trace_id": span.context.trace_id,
                          "events": [e.name for e in span.events]}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
