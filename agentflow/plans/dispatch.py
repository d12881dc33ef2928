"""Dynamic dispatch: one registered workflow that runs code chosen per instance.

The Python counterpart of Cloudflare's Dynamic Workflows library, for platforms that
bring their own loader. A tenant's instances are created through a *wrapped* binding,
which persists a metadata envelope inside the instance payload::

    {"__dispatcher_metadata": {...tenant metadata...}, "params": <what the plan sees>}

The engine runs the registered *dynamic entrypoint* for every such instance; on every
run and every resume it unwraps the envelope, asks ``load_runner(metadata)`` for the
tenant's runner, and calls it with an event whose payload is only ``params``.

Where Cloudflare's wrapper falls short, this one does not: `WrappedBinding.get` only
finds the tenant's own instances (any other id is answered exactly as a missing one),
and the instance controls keep all their options.

Example:
    async def load_runner(metadata):
        return my_plans[metadata["agent_id"]]        # any `async run(event, step)`

    engine.register("dynamic", create_dynamic_entrypoint(load_runner))
    tenant = wrap_workflow_binding(engine.binding("dynamic"), {"agent_id": "a-42"})
    inst = await tenant.create(params={"x": 1})
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from agentflow._instance import Instance, WorkflowBinding
from agentflow._limits import dumps
from agentflow._step import Step
from agentflow.errors import (
    InstanceNotFoundError,
    InvalidArgumentError,
    MissingDispatcherMetadataError,
)
from agentflow.models import Event
from agentflow.store import ScopeQuota

__all__ = [
    "ENVELOPE_KEY",
    "LoadRunner",
    "WrappedBinding",
    "create_dynamic_entrypoint",
    "dispatch_workflow",
    "scope_of",
    "wrap_workflow_binding",
]

ENVELOPE_KEY = "__dispatcher_metadata"

Runner = Callable[[Event, Step], Awaitable[Any]] | Any  # a run function or an object with .run
LoadRunner = Callable[[dict[str, Any]], Runner | Awaitable[Runner]]


def scope_of(metadata: Mapping[str, Any]) -> str:
    """The scope an instance is filed under: the metadata's ``agent_id`` (or
    ``tenant``) when present, else the whole metadata as canonical JSON."""
    for key in ("agent_id", "tenant"):
        if isinstance(metadata.get(key), str):
            return str(metadata[key])
    return json.dumps(dict(metadata), sort_keys=True, separators=(",", ":"))


def unwrap(payload: Any) -> tuple[dict[str, Any], Any]:
    """Split a persisted payload into (metadata, params).

    Raises:
        MissingDispatcherMetadataError: the payload carries no envelope.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get(ENVELOPE_KEY), dict):
        raise MissingDispatcherMetadataError(
            f"the instance payload has no {ENVELOPE_KEY!r} envelope; create instances of a "
            f"dynamic workflow through wrap_workflow_binding(binding, metadata)")
    return payload[ENVELOPE_KEY], payload.get("params")


async def dispatch_workflow(event: Event, step: Step, load_runner: LoadRunner) -> Any:
    """Unwrap the envelope, load the tenant's runner and run it with the inner event.

    ``load_runner(metadata)`` is called on every run (a replay after a sleep or an
    event included); it may be sync or async, and may return an ``async run(event,
    step)`` function or an object with such a ``run`` method.
    """
    metadata, params = unwrap(event.payload)
    runner = load_runner(metadata)
    if inspect.isawaitable(runner):
        runner = await runner
    run = getattr(runner, "run", runner)
    if not callable(run):
        raise InvalidArgumentError(f"load_runner returned {type(runner).__name__}, which is "
                                   "neither a run(event, step) function nor has a run method")
    inner = Event(payload=params, timestamp=event.timestamp, instance_id=event.instance_id)
    return await run(inner, step)


def create_dynamic_entrypoint(load_runner: LoadRunner) -> Callable[[Event, Step],
                                                                  Awaitable[Any]]:
    """The workflow function to register for dynamic dispatch (see `dispatch_workflow`)."""
    async def dynamic_entrypoint(event: Event, step: Step) -> Any:
        return await dispatch_workflow(event, step, load_runner)
    return dynamic_entrypoint


class WrappedBinding:
    """A binding that files every instance under one tenant's metadata envelope."""

    def __init__(self, binding: WorkflowBinding, metadata: Mapping[str, Any]) -> None:
        try:
            dumps(dict(metadata))
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"dispatcher metadata must be JSON: {exc}") from None
        self.binding = binding
        self.metadata = dict(metadata)
        self.scope = scope_of(self.metadata)

    def envelope(self, params: Any, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {ENVELOPE_KEY: dict(metadata or self.metadata), "params": params}

    async def create(self, params: Any = None, id: str | None = None, *,
                     metadata: Mapping[str, Any] | None = None,
                     quota: ScopeQuota | None = None) -> Instance:
        """Create an instance whose payload is the envelope around ``params``.
        ``metadata`` replaces the wrapper's for this instance (same scope required);
        ``quota`` as in `create_batch`."""
        return (await self.create_batch([{"params": params, "id": id}], metadata=metadata,
                                        must_be_new=True, quota=quota))[0]

    async def create_batch(self, items: Iterable[Mapping[str, Any]], *,
                           metadata: Mapping[str, Any] | None = None,
                           must_be_new: bool = False,
                           quota: ScopeQuota | None = None) -> list[Instance]:
        """Like `WorkflowBinding.create_batch`, each payload wrapped in the envelope.

        An explicit id this tenant holds already is skipped (idempotent, as Cloudflare
        does). Ids are unique in the whole store, so an id another tenant (or another
        workflow) holds is refused before anything is written, with the error a taken
        id gets in `create`: no handle to someone else's instance is ever returned.

        With ``quota`` (whose scope must be the wrapper's), the store counts the
        tenant's instances in the transaction that writes the new ones, and raises
        `agentflow.store.ScopeQuotaRefused` (writing nothing) past it.
        """
        if quota is not None and quota.scope != self.scope:
            raise InvalidArgumentError("a quota must be for the wrapper's scope")
        if metadata is not None and scope_of(metadata) != self.scope:
            raise InvalidArgumentError("per-instance metadata must keep the wrapper's scope")
        engine = self.binding.engine
        rows, explicit = [], []
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or set(item) - {"params", "id"}:
                raise InvalidArgumentError(f"create_batch item {i} must be a dict with "
                                           f"'params' and optionally 'id'")
            rows.append(self.binding.prepare(self.envelope(item.get("params"), metadata),
                                             item.get("id"), scope=self.scope))
            if item.get("id") is not None:
                explicit.append(rows[-1].id)
        if not rows:
            return []
        own = await self._refuse_foreign(explicit)
        created = set(await engine.insert_instances(rows, quota))
        if must_be_new and not created:
            raise InvalidArgumentError(f"an instance with id {rows[0].id!r} already exists; "
                                       f"choose another id")
        # An id taken by someone else between the check and the write was skipped.
        await self._refuse_foreign([r.id for r in rows if r.id not in created | own])
        return [Instance(engine, r.id, self.binding.name) for r in rows]

    async def _refuse_foreign(self, ids: list[str]) -> set[str]:
        """Refuse ids held by another tenant or workflow; return those this one holds."""
        store, own = self.binding.engine.store, set()
        for instance_id in dict.fromkeys(ids):
            row = await store.get_instance(instance_id)
            if row is None:
                continue
            if row.scope != self.scope or row.workflow != self.binding.name:
                raise InvalidArgumentError(f"an instance with id {instance_id!r} already "
                                           f"exists; choose another id")
            own.add(instance_id)
        return own

    async def get(self, id: str) -> Instance:
        """The tenant's own instance with that id; any other id is not found."""
        row = await self.binding.engine.store.get_instance(id) if isinstance(id, str) else None
        if row is None or row.workflow != self.binding.name or row.scope != self.scope:
            raise InstanceNotFoundError(f"no instance with id {id!r}")
        return Instance(self.binding.engine, row.id, self.binding.name)


def wrap_workflow_binding(binding: WorkflowBinding, metadata: Mapping[str, Any]
                          ) -> WrappedBinding:
    """Wrap a binding so its instances carry ``metadata`` in their persisted payload."""
    return WrappedBinding(binding, metadata)
