"""OpenTelemetry traces of instances (``pip install "agentflow[otel]"``).

`instrument(engine_or_flow)` makes every instance one trace, in every process that is
instrumented the same way:

- **A trace per instance.** Its trace id is the trace of whoever created the instance
  (the span current at ``create``/``start``: an MCP ``tools/call`` span that carried a
  ``traceparent`` in the request's ``_meta``, your own span in Python code), kept in
  the database, so a worker in another process, days later, adds to the same trace.
  Without a current span at creation, the trace id is derived from the instance id.
- **A span per run** (``agentflow.run <workflow or plan>``, with the agent, plan and
  version as attributes for an agent's plan): one activation, from a claim to a
  finish or a suspension. Replays are runs too; a step already journaled is not
  executed again, so it makes no span.
- **A span per step attempt** (``agentflow.step <name>``), child of its run: created
  when the step's body actually runs, so a retried step shows one span per attempt
  (the failed ones with the error recorded), across processes. Its
  ``agentflow.step.attempt`` attribute is the attempt's number (1 for the first), as
  the instance's history counts it.
- **Events for sleeps and waits**: when a run suspends on ``sleep``, ``sleep_until``,
  ``wait_for_event`` or a retry timer, its run span gets an event
  (``agentflow.sleep``, ``agentflow.wait``) with the step's name.

Only the API is used here; the application configures the SDK (a `TracerProvider`
with its exporters) and may pass it. What this is not: it does not trace the host's
own database calls, and a process that is not instrumented adds nothing to the trace.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from agentflow._step import current_attempt
from agentflow.errors import EngineSignal, Suspend
from agentflow.store import TRACE_KV_SCOPE

#: Where an agent plan's instance payload carries its agent, plan and version (the
#: dispatch envelope; kept literal here so that tracing never imports the agent layer).
ENVELOPE_KEY = "__dispatcher_metadata"

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from agentflow._engine import Engine, WorkflowFn
    from agentflow.plans import AgentFlow

__all__ = ["TRACE_SCOPE", "instrument"]

#: The key-value scope where the trace context of each instance is kept (deleted with
#: the instance).
TRACE_SCOPE = TRACE_KV_SCOPE


def _otel() -> Any:
    try:
        from opentelemetry import context, propagate, trace
    except ImportError as exc:  # pragma: no cover - opentelemetry-api comes with mcp
        raise ImportError('agentflow.otel needs OpenTelemetry: pip install "agentflow[otel]"'
                          ) from exc
    return trace, context, propagate


def instrument(target: Engine | AgentFlow, *, tracer_provider: TracerProvider | None = None
               ) -> None:
    """Trace the instances ``target`` creates and runs (see the module docstring).

    Call it once per process, before starting work; every process that runs the same
    instances (workers, ``agentflow serve``, MCP servers) should be instrumented.

    Args:
        target: an `Engine`, or an `AgentFlow` (its engine).
        tracer_provider: the provider to use (default: the global one).
    """
    trace, _, _ = _otel()
    engine = cast("Engine", getattr(target, "engine", target))
    tracer = trace.get_tracer("agentflow", tracer_provider=tracer_provider)
    tracing = _Tracing(engine, tracer)
    engine.create_listeners.append(tracing.remember_creator)
    engine.wrap_runs(tracing.wrap)


class _Tracing:
    def __init__(self, engine: Engine, tracer: Tracer) -> None:
        self.engine = engine
        self.tracer = tracer

    async def remember_creator(self, instance_ids: list[str]) -> None:
        """Keep the creator's trace context for each new instance."""
        trace, _, propagate = _otel()
        if not trace.get_current_span().get_span_context().is_valid:
            return
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        text = json.dumps(carrier)
        now = self.engine.clock.now()
        for instance_id in instance_ids:
            await self.engine.store.kv_set(TRACE_SCOPE, instance_id, text, now)

    async def _parent(self, instance_id: str) -> Any:
        """The context a run's span hangs from: the creator's, or one derived from the
        instance id (the same in every process)."""
        trace, context, propagate = _otel()
        stored = await self.engine.store.kv_get(TRACE_SCOPE, instance_id)
        if stored is not None:
            return propagate.extract(json.loads(stored), context=context.Context())
        digest = hashlib.sha256(instance_id.encode()).digest()
        span_context = trace.SpanContext(
            trace_id=int.from_bytes(digest[:16], "big") or 1,
            span_id=int.from_bytes(digest[16:24], "big") or 1,
            is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
        return trace.set_span_in_context(trace.NonRecordingSpan(span_context),
                                         context.Context())

    def wrap(self, name: str, fn: WorkflowFn) -> WorkflowFn:
        tracing = self

        async def traced_run(event: Any, step: Any) -> Any:
            trace, _, _ = _otel()
            parent = await tracing._parent(event.instance_id)
            attributes = {"agentflow.instance_id": event.instance_id,
                          "agentflow.workflow": name}
            title = name
            meta = event.payload.get(ENVELOPE_KEY) if isinstance(event.payload, dict) else None
            if isinstance(meta, dict):  # an agent's plan: name the run after the plan
                for key in ("agent_id", "plan", "version"):
                    if isinstance(meta.get(key), str):
                        attributes[f"agentflow.{key}"] = meta[key]
                title = str(meta.get("plan") or name)
            with tracing.tracer.start_as_current_span(
                    f"agentflow.run {title}", context=parent, kind=trace.SpanKind.INTERNAL,
                    attributes=attributes,
                    record_exception=False, set_status_on_exception=False) as span:
                try:
                    traced_step = cast(Any, _TracedStep(step, tracing.tracer, span))
                    result = await fn(event, traced_step)
                except Suspend:
                    span.set_attribute("agentflow.run.outcome", "suspended")
                    raise
                except EngineSignal:
                    span.set_attribute("agentflow.run.outcome", "stopped")
                    raise
                except Exception as exc:
                    span.set_attribute("agentflow.run.outcome", "errored")
                    span.record_exception(exc)
                    span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
                    raise
                span.set_attribute("agentflow.run.outcome", "complete")
                return result

        return traced_run


class _TracedStep:
    """The run's `Step`, with a span around each attempt of a step's body and an
    event on the run's span when the run suspends on a timer or an event."""

    def __init__(self, step: Any, tracer: Tracer, run_span: Span) -> None:
        self._step = step
        self._tracer = tracer
        self._run_span = run_span

    def __getattr__(self, name: str) -> Any:
        return getattr(self._step, name)

    async def do(self, name: str, fn: Callable[[], Any], **options: Any) -> Any:
        tracer = self._tracer

        async def attempt() -> Any:
            attributes: dict[str, str | int] = {"agentflow.step": name}
            number = current_attempt()  # set by the engine around each attempt's body
            if number is not None:
                attributes["agentflow.step.attempt"] = number
            with tracer.start_as_current_span(f"agentflow.step {name}",
                                              attributes=attributes):
                value = fn()
                if inspect.isawaitable(value):
                    value = await value
                return value

        try:
            return await self._step.do(name, attempt if callable(fn) else fn, **options)
        except Suspend:  # a retry timer
            self._run_span.add_event("agentflow.retry", {"agentflow.step": name})
            raise

    async def sleep(self, name: str, duration: Any) -> None:
        await self._suspending("agentflow.sleep", name, self._step.sleep(name, duration))

    async def sleep_until(self, name: str, when: Any) -> None:
        await self._suspending("agentflow.sleep", name, self._step.sleep_until(name, when))

    async def wait_for_event(self, name: str, **options: Any) -> Any:
        return await self._suspending(
            "agentflow.wait", name, self._step.wait_for_event(name, **options),
            {"agentflow.event_type": str(options.get("type", ""))})

    async def _suspending(self, event: str, name: str, call: Any,
                          extra: dict[str, str] | None = None) -> Any:
        try:
            return await call
        except Suspend:
            self._run_span.add_event(event, {"agentflow.step": name, **(extra or {})})
            raise
